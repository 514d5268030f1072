#!/usr/bin/perl
# A target's circuit breaker end to end: a target that answers 503
# opens it after "failures" attempts in a row; during the cool-down
# nothing is sent, however many retries come due; then one probe goes
# (half open): failed, it opens again; delivered, it closes and the
# waiting events go out. The trace's entry that opened it says so; the
# ebd_circuit_open gauge and ebd_circuit_opened_total show it; a 4xx
# (the event's fault) does not count. Then pausing: `ebd pause TARGET`
# stops every attempt within a second, `ebd pause` lists it, `ebd resume`
# lets the queued events go, in order, no attempt counted for the pause;
# a 410 Gone pauses the target by itself (for every ebd: the bus's
# eb:{BUS}:paused), until resumed.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use EBTest qw(wait_for);
use EBTest::Peer;

plan skip_all => 'ebd not built' unless -x EBTest::Ebd::binary();

my $JSON = JSON::PP->new->utf8->canonical;
my $api = EBTest::Peer->start(control => { paths => { '/down' => 503, '/bad' => 400,
                                                      '/gone' => 200 } });
my $mport = EBTest::free_port();

my $fast = { strategy => 'backoff', attempts => 1000, interval => '50ms',
             max_interval => '60ms' };
my $cfg = {
    targets => {
        down => { type => 'http', url => $api->url('/down'), retry => $fast,
                  concurrency => 4,
                  circuit_breaker => { failures => 3, cooldown => '1500ms' } },
        bad  => { type => 'http', url => $api->url('/bad'), retry => $fast,
                  circuit_breaker => { failures => 2, cooldown => '10s' } },
        gone => { type => 'http', url => $api->url('/gone'), retry => $fast,
                  concurrency => 1 },
    },
    buses => { t => { rules => {
        down => { pattern => { data => { body => { case => [ 'down' ] } } },
                  targets => [ { target => 'down' } ] },
        bad  => { pattern => { data => { body => { case => [ 'bad' ] } } },
                  targets => [ { target => 'bad' } ] },
        gone => { pattern => { data => { body => { case => [ 'gone' ] } } },
                  targets => [ { target => 'gone' } ] },
    } } },
};

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /t { eventbridge_source t.src bus=t; }
    }
EOF
my $cfgfile = $ngx->dir . '/buses.json';
EBTest::write_file($cfgfile, $JSON->encode($cfg));
$ngx->start;
my $ebd = EBTest::Ebd->start(config => $cfgfile, redis => $redis, name => 'ebd-077',
                             args => [ '--metrics', "127.0.0.1:$mport" ]);
ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'ebd is ready')
    or BAIL_OUT("ebd did not start:\n" . $ebd->log);

sub event {
    my (%body) = @_;
    my $r = $ngx->request(method => 'POST', path => '/t',
                          headers => [ 'Content-Type' => 'application/json' ],
                          body => $JSON->encode(\%body));
    is($r->{status}, 200, "event $body{case} accepted") or diag $r->{raw};
    return $r->{json}{eventId} // '';
}

sub metrics {
    my $r = EBTest::http(port => $mport, method => 'GET', path => '/metrics',
                         timeout => 10);
    return $r->{status} == 200 ? EBTest::prometheus($r->{body}) : {};
}
my $L = '{bus="t",target="down"}';

# --- 1. it opens, stays open, probes ----------------------------------------------

my $t0 = time;
event(case => 'down', n => $_) for 1 .. 5;
ok(wait_for(sub { @{ $api->requests(path => '/down') } >= 3 }, 10),
   'the first attempts went out');
sleep 1.0;
my @r = @{ $api->requests(path => '/down') };
cmp_ok(scalar @r, '<=', 6, 'open: at most the attempts in flight when it opened, '
       . 'no retries, in 1 s of 50 ms retries (got ' . scalar(@r) . ')');
my $m = metrics();
is($m->{"ebd_circuit_open$L"}, 1, 'ebd_circuit_open is 1');
is($m->{"ebd_circuit_opened_total$L"}, 1, 'ebd_circuit_opened_total is 1');
like($ebd->log, qr/target down: circuit open for 1500 ms after 3 failed attempt\(s\) in a row/,
     'the log says it opened');
my @tr = grep { ($_->[1]{target} // '') eq 'down' && ($_->[1]{error} // '') =~ /circuit open/ }
         @{ $redis->xrange('eb:{t}:trace') };
ok(scalar @tr, 'a trace entry says the circuit opened')
    or diag $JSON->encode($redis->xrange('eb:{t}:trace'));
like($tr[0][1]{error} // '', qr/^HTTP 503; circuit open for 1500 ms$/, 'its error text');

# the cool-down ends: one probe, which fails: open again
my $n1 = scalar @r;
ok(wait_for(sub { @{ $api->requests(path => '/down') } > $n1 }, 5), 'a probe after the cool-down');
sleep 0.5;
my @r2 = @{ $api->requests(path => '/down') };
is(scalar @r2, $n1 + 1, 'half open: exactly one probe');
my $gap = $r2[-1]{time} - $r[-1]{time};
cmp_ok($gap, '>=', 1.3, sprintf 'the probe came after the cool-down (%.2f s)', $gap);
like($ebd->log, qr/target down: circuit half open/, 'the log says half open');
is(metrics()->{"ebd_circuit_opened_total$L"}, 2, 'the failed probe opened it again');

# --- 2. the target is back: the next probe closes it, the rest go ---------------------

$api->control({ paths => { '/down' => 200, '/bad' => 400 } });
ok(wait_for(sub { 5 <= grep { $_->{status} == 200 } @{ $api->requests(path => '/down') } }, 10),
   'the target is back: the five events delivered');
like($ebd->log, qr/target down: circuit closed/, 'the log says closed');
is(metrics()->{"ebd_circuit_open$L"}, 0, 'ebd_circuit_open is 0 again');
diag(sprintf 'breaker: %d requests in all over %.1f s',
     scalar @{ $api->requests(path => '/down') }, time - $t0);

# --- 3. a 4xx is the event's fault: it does not count ---------------------------------

event(case => 'bad', n => $_) for 1 .. 3;
ok(wait_for(sub { @{ $redis->xrange('eb:{t}:dlq:bad') } >= 3 }, 10),
   '400: three dead letters');
is(metrics()->{'ebd_circuit_opened_total{bus="t",target="bad"}'}, 0,
   '400s do not open the breaker');

# --- 4. ebd pause / ebd resume -------------------------------------------------------

sub ebd_cmd {
    my $cmd = join ' ', map { "'$_'" } EBTest::Ebd::binary(), '-r', $redis->addr,
                                       '-c', $cfgfile, @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}
my $G = '{bus="t",target="gone"}';
sub gone_bodies { [ map { $JSON->decode($_->{body})->{data}{body}{n} } @{ $api->requests(path => '/gone') } ] }

event(case => 'gone', n => 0);
ok(wait_for(sub { @{ gone_bodies() } == 1 }, 10), 'gone: delivered while not paused');
my ($rc, $out) = ebd_cmd('pause', 'gone', '--reason', 'planned maintenance');
is($rc, 0, 'ebd pause gone: exit 0') or diag $out;
like($out, qr/target gone paused on bus t/, 'ebd pause says where');
ok(wait_for(sub { $ebd->log =~ /target gone: paused \(bus t: planned maintenance\)/ }, 5),
   'ebd sees the pause within the poll') or diag $ebd->log;
event(case => 'gone', n => $_) for 1 .. 3;
sleep 1.0;
is(scalar @{ gone_bodies() }, 1, 'paused: nothing sent in 1 s');
is(metrics()->{"ebd_target_paused$G"}, 1, 'ebd_target_paused is 1');
($rc, $out) = ebd_cmd('pause');
like($out, qr/^gone  paused since \S+ on bus t: planned maintenance$/m, 'ebd pause lists it');
($rc, $out) = ebd_cmd('resume', 'gone');
is($rc, 0, 'ebd resume gone: exit 0') or diag $out;
ok(wait_for(sub { @{ gone_bodies() } == 4 }, 10), 'resumed: the three queued events go');
is(join(',', @{ gone_bodies() }), '0,1,2,3', 'in order');
my @ga = grep { ($_->[1]{target} // '') eq 'gone' } @{ $redis->xrange('eb:{t}:trace') };
is(join(',', map { $_->[1]{attempt} } @ga), '1,1,1,1', 'no attempt counted for the pause');
is(metrics()->{"ebd_target_paused$G"}, 0, 'ebd_target_paused is 0 again');
($rc, $out) = ebd_cmd('pause', 'nosuch');
is($rc, 2, 'ebd pause of an unknown target: exit 2');
like($out, qr/no rule of .* sends to a target "nosuch"/, 'and says so');

# --- 5. a 410 Gone pauses the target until resumed --------------------------------------

$api->control({ paths => { '/down' => 200, '/bad' => 400, '/gone' => 410 } });
event(case => 'gone', n => $_) for 4 .. 6;
ok(wait_for(sub { $ebd->log =~ /target gone: paused \(bus t: 410 Gone \(event / }, 10),
   '410: the target pauses itself') or diag $ebd->log;
like($redis->cmd('HGET', 'eb:{t}:paused', 'gone') // '', qr/^\d+ 410 Gone \(event /,
     '410: the pause is in Redis, for every ebd');
sleep 1.0;
my @gone = grep { $_->{status} == 410 } @{ $api->requests(path => '/gone') };
is(scalar @gone, 1, '410: one request, then nothing while paused');
my @g410 = grep { ($_->[1]{error} // '') =~ /^HTTP 410 Gone: target paused until "ebd resume gone"$/ }
           @{ $redis->xrange('eb:{t}:trace') };
is(scalar @g410, 1, '410: the trace entry says so');
is(scalar @{ $redis->xrange('eb:{t}:dlq:gone') }, 0, '410: nothing dead-lettered');
$api->control({ paths => { '/down' => 200, '/bad' => 400, '/gone' => 200 } });
($rc, $out) = ebd_cmd('resume', 'gone');
ok(wait_for(sub { 7 == grep { $_->{status} == 200 } @{ $api->requests(path => '/gone') } }, 10),
   '410, resumed: the three events delivered');
is(join(',', map { $JSON->decode($_->{body})->{data}{body}{n} }
             grep { $_->{status} == 200 } @{ $api->requests(path => '/gone') }),
   '0,1,2,3,4,5,6', '410: in order, the one that got 410 first');

$ebd->finish;
$ngx->finish;
done_testing;
