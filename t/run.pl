#!/usr/bin/perl
# Runs every t/*.t (end-to-end and the unit-test binaries via
# t/000-unit.t) with TAP::Harness and ends with "N passed, N failed",
# counting individual tests.
use strict;
use warnings;
use FindBin;
use TAP::Harness;

chdir "$FindBin::Bin/.." or die "chdir: $!";

my @files = @ARGV ? @ARGV : sort glob('t/*.t');
my $harness = TAP::Harness->new({
    verbosity => $ENV{TEST_VERBOSE} ? 1 : 0,
    lib       => ['t/lib'],
    color     => 0,
    timer     => 1,
});

my $agg = $harness->runtests(@files);

my ($passed, $failed) = (0, 0);
for my $parser ($agg->parsers) {
    $passed += scalar $parser->passed;
    $failed += scalar $parser->failed;
    # a test file that died or broke its plan counts as one failure more
    $failed++ if $parser->has_problems && !$parser->failed;
}

print "$passed passed, $failed failed\n";
exit($agg->all_passed ? 0 : 1);
