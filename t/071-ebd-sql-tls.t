#!/usr/bin/perl
# The `tls` option of mysql and postgresql targets against real servers
# that speak TLS with a certificate of a test CA (EBTest::TLS). The
# users ebd connects as may only connect over TLS (MariaDB: REQUIRE SSL /
# REQUIRE X509; PostgreSQL: hostssl, and clientcert=verify-full), so a
# delivered row proves the connection was encrypted:
#   verify-full with the CA            delivered
#   verify-full + a client certificate delivered (the X509 user)
#   require (no CA: encrypted, not verified)  delivered
#   verify-full with another CA        refused: the server's certificate
#   the X509 user without a certificate refused by the server
#   no TLS (disable)                   refused by the server
# Entries go straight into the target streams: this file is about ebd.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use EBTest qw(wait_for write_file);
use EBTest::MariaDB;
use EBTest::Postgres;
use EBTest::TLS;

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'MariaDB server not installed' unless EBTest::MariaDB::available();
plan skip_all => 'PostgreSQL server not installed' unless EBTest::Postgres::available();
plan skip_all => 'openssl is not installed' unless `openssl version 2>/dev/null`;

my $JSON = JSON::PP->new->utf8->canonical;
my $dir = tempdir('eb-071t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;                       # the postgres user reads the CA
my $tls = EBTest::TLS->make($dir);
chmod 0644, glob("$dir/*");
chmod 0600, $tls->{client_key};          # libpq refuses a key others can read

my $redis = EBTest::Redis->start;
my %db = (mysql      => EBTest::MariaDB->start(database => 'hr', tls => $tls),
          postgresql => EBTest::Postgres->start(database => 'hr', tls => $tls));

my %cases = (
    ok      => { user => 'ebtls',  tls => { mode => 'verify-full', ca => $tls->{ca} } },
    x509    => { user => 'ebx509', tls => { mode => 'verify-full', ca => $tls->{ca},
                                            cert => $tls->{client_cert},
                                            key => $tls->{client_key} } },
    require => { user => 'ebtls',  tls => { mode => 'require' } },
    wrongca => { user => 'ebtls',  tls => { mode => 'verify-full', ca => $tls->{other_ca} } },
    nocert  => { user => 'ebx509', tls => { mode => 'verify-full', ca => $tls->{ca} } },
    plain   => { user => 'ebtls',  tls => { mode => 'disable' } },
);
my @delivered = qw(ok x509 require);
my @refused = qw(wrongca nocert plain);

my (%targets, @names);
for my $kind (sort keys %db) {
    for my $c (sort keys %cases) {
        my $name = "$c-$kind";
        $db{$kind}->sql("CREATE TABLE t_$c (eid varchar(64))");
        $targets{$name} = $db{$kind}->target(
            %{ $cases{$c} }, table => "t_$c", columns => { eid => '$.id' },
            timeout => '5s',
            retry => { strategy => 'backoff', attempts => 2, interval => '50ms',
                       max_interval => '100ms' });
        push @names, $name;
    }
}
my $cfg = { targets => \%targets,
            buses => { tls => { rules => { all => {
                pattern => { source => [ 'tls.src' ] },
                targets => [ map { { target => $_ } } @names ] } } } } };
my $conf = "$dir/buses.json";
write_file($conf, $JSON->encode($cfg));

{
    my $out = `'$EBD' -t -c '$conf' 2>&1`;
    is($? >> 8, 0, 'ebd -t accepts the tls options') or diag $out;
    my $bad = { %$cfg, targets => { x => { %{ $targets{'ok-mysql'} },
                                           tls => { mode => 'verify-full' } } } };
    $bad->{buses} = {};
    write_file("$dir/bad.json", $JSON->encode($bad));
    $out = `'$EBD' -t -c '$dir/bad.json' 2>&1`;
    like($out, qr/targets\.x\.tls: "verify-full" needs "ca"/, 'verify-full without a CA: refused at load');
    $bad->{targets}{x}{tls} = { mode => 'require', cert => $tls->{client_cert} };
    write_file("$dir/bad.json", $JSON->encode($bad));
    $out = `'$EBD' -t -c '$dir/bad.json' 2>&1`;
    like($out, qr/targets\.x\.tls: "cert" and "key" go together/, 'a certificate without its key: refused');
}

# one event for every target
my $event = $JSON->encode({ specversion => '1.0', id => 'tls-event-1', source => 'tls.src',
                            type => 't', data => { n => 1 } });
for my $name (@names) {
    my $r = $redis->cmd('XADD', "eb:{tls}:target:$name", '*', 'event', $event, 'rule', 'all');
    ok(!ref $r, "entry for $name") or diag explain $r;
}

my $ebd = EBTest::Ebd->start(config => $conf, redis => $redis, name => 'ebd-071t');
ok($ebd->alive, 'ebd started') or diag $ebd->log;

for my $kind (sort keys %db) {
    for my $c (@delivered) {
        ok(wait_for(sub { @{ $db{$kind}->sql("SELECT eid FROM t_$c") } == 1 }, 20),
           "$kind, $c: the row arrived over TLS") or diag $ebd->log;
    }
    for my $c (@refused) {
        my $dlq = "eb:{tls}:dlq:$c-$kind";
        ok(wait_for(sub { $redis->xlen($dlq) == 1 }, 30),
           "$kind, $c: refused, dead-lettered after its attempts") or diag $ebd->log;
        is(scalar @{ $db{$kind}->sql("SELECT eid FROM t_$c") }, 0, "$kind, $c: no row");
    }
}

# the reasons, as the dead letters keep them
sub reason {
    my ($t) = @_;
    my $e = $redis->xrange("eb:{tls}:dlq:$t")->[0] or return '';
    return $e->[1]{error} // '';
}
like(reason('wrongca-mysql'), qr/certif|TLS|SSL/i, 'mysql, another CA: a certificate error');
like(reason('wrongca-postgresql'), qr/certificate verify failed/i, 'postgresql, another CA: certificate verify failed');
like(reason('nocert-postgresql'), qr/certificate/i, 'postgresql, no client certificate: the server asks for one');
like(reason('plain-mysql'), qr/Access denied/i, 'mysql without TLS: the REQUIRE SSL user is refused');
like(reason('plain-postgresql'), qr/no encryption|pg_hba/i, 'postgresql without TLS: refused by hostnossl');

my $log = $ebd->log;
unlike($log, qr/\Q${\ $db{mysql}->password }\E/, 'no password in the log');
$ebd->finish;

done_testing;
