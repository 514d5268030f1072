#!/usr/bin/perl
# Runs the C unit-test binaries (built from t/unit/test_*.c by make) and
# relays each of their results as a test of its own.
use strict;
use warnings;
use Test::More;

my $dir = $ENV{TEST_EB_UNIT_DIR} || 'build/unit';
my @bins = sort grep { -x $_ && !/\.d$/ } glob("$dir/test_*");

plan skip_all => "no unit-test binaries in $dir (run make)" unless @bins;

for my $bin (@bins) {
    (my $name = $bin) =~ s{.*/}{};
    my @out = `$bin 2>&1`;
    my $rc = $? >> 8;
    my $n = 0;
    for (@out) {
        chomp;
        if (/^(not )?ok \d+ - (.*)$/) {
            ok(!$1, "$name: $2");
            $n++;
        } elsif (!/^1\.\.\d+$/) {
            diag $_;    # diagnostics, sanitizer reports
        }
    }
    ok($n > 0, "$name ran tests");
    is($rc, 0, "$name exited cleanly");
}

done_testing;
