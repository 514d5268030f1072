#!/usr/bin/perl
# ebd --metrics: the Prometheus page of a real ebd, read by Prometheus's
# own parser (EBTest::prometheus), with exact figures: deliveries by
# outcome (delivered, retried, dead_lettered, discarded) and attempts
# against what the HTTP peer received; histograms cumulative with a
# count equal to the deliveries; entries waiting for a retry; backlog
# (lag), pending entries and dead letters against Redis's own XINFO and
# XLEN; OAuth2 token fetches against the token endpoint's log; Redis
# connections down while Redis is killed and up again after; counters
# kept across SIGHUP; -w 2 reports the sum of both workers and keeps a
# killed worker's counts; Redis Cluster (buses on two primaries) and
# Sentinel; the listener: 404, 405, 400, 414, 431, 505, HEAD, Host, a
# connection cap and an idle timeout; a bad --metrics address or a port
# in use stops ebd at start with a message naming --metrics.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::Peer;
use EBTest::RedisCluster;
use EBTest::Sentinel;

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'redis-server 7 needed (XINFO GROUPS lag)'
    unless `redis-server --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;

my $JSON = JSON::PP->new->utf8->canonical;
my $t0 = time;

# --- the peer: an API, a token endpoint --------------------------------------

my %ctl = (
    paths => {
        '/ok'    => 200,
        '/fail'  => 500,
        '/fail2' => 500,
        '/fail3' => 500,
        '/none'  => 503,
        '/spread' => { status => 200, delay => 0.1 },
    },
    oauth => { token_path => '/token', client_id => 'ebd-client',
               client_secret => 'cs-073', expires_in => 3600,
               protect => [ '/secure' ] },
);
my $peer = EBTest::Peer->start(control => \%ctl);

my $fast = { strategy => 'backoff', interval => '50ms',
             max_interval => '100ms' };

sub http_target {
    my ($path, %o) = @_;
    return { type => 'http', url => $peer->url($path), %o };
}

my $cfg = {
    connections => {
        oa    => { type => 'oauth2', insecure => JSON::PP::true,
                   token_url => $peer->url('/token'),
                   client_id => 'ebd-client', client_secret => 'cs-073' },
        oabad => { type => 'oauth2', insecure => JSON::PP::true,
                   token_url => $peer->url('/token'),
                   client_id => 'ebd-client', client_secret => 'wrong' },
        oadown => { type => 'oauth2', insecure => JSON::PP::true,
                    token_url => 'http://127.0.0.1:' . EBTest::free_port() . '/token',
                    client_id => 'ebd-client', client_secret => 'cs-073' },
    },
    targets => {
        ok      => http_target('/ok'),
        fail    => http_target('/fail', retry => { %$fast, attempts => 2 }),
        patient => http_target('/fail2',
                               retry => { strategy => 'backoff', attempts => 1,
                                          interval => '60s' }),
        dropper => http_target('/fail3', dead_letter => JSON::PP::false,
                               retry => { %$fast, attempts => 0 }),
        none    => http_target('/none', fault_tolerance => 'NONE',
                               retry => { %$fast, attempts => 1 }),
        secure  => http_target('/secure', connection => 'oa'),
        badauth => http_target('/secure', connection => 'oabad',
                               retry => { %$fast, attempts => 1 }),
        notoken => http_target('/secure', connection => 'oadown', concurrency => 1,
                               retry => { %$fast, attempts => 0 }),
        spread  => http_target('/spread', concurrency => 1),
    },
    buses => {
        b1 => { rules => { map { ("r-$_" => { pattern => { source => ['s'] },
                                              targets => [ { target => $_ } ] }) }
                           qw(ok fail patient dropper none secure badauth
                              notoken spread) } },
        b2 => { rules => { 'r-ok' => { pattern => { source => ['s'] },
                                       targets => [ { target => 'ok' } ] } } },
    },
};
my @ROUTES = ((map { [ 'b1', $_ ] } qw(ok fail patient dropper none secure
                                      badauth notoken spread)), [ 'b2', 'ok' ]);
# readers: one per route, and one for the NONE target's partition (p:0,
# t/091), whose metrics are its target's
my $NR = @ROUTES + 1;

my $redis = EBTest::Redis->start(appendonly => 'yes',
                                 args => [ '--appendfsync', 'always' ]);
my $dir = $redis->{dir};
write_file("$dir/buses.json", $JSON->encode($cfg));

# --- helpers -------------------------------------------------------------------

my $mport = EBTest::free_port();
my $n = 0;

# XADD as nginx does: the event and the rule that sent it
sub xadd {
    my ($bus, $target, $count, $r) = @_;
    $r //= $redis;
    my @cmds;
    for (1 .. $count) {
        my $id = 'ev-' . ++$n;
        my $ev = $JSON->encode({ specversion => '1.0', id => $id, source => 's',
                                 type => 't073', data => { n => $n } });
        push @cmds, [ 'XADD', "eb:{$bus}:target:$target", '*',
                      'event', $ev, 'rule', "r-$target" ];
    }
    return $r->pipeline(@cmds);
}

sub get {
    my ($path, %o) = @_;
    return EBTest::http(port => $o{port} // $mport, method => $o{method} // 'GET',
                        path => $path, timeout => 10);
}

# the page, parsed: { 'name{labels}' => value }; in list context the
# families too
sub scrape {
    my (%o) = @_;
    my $r = get('/metrics', %o);
    die "GET /metrics: $r->{status} " . ($r->{error} // '') . "\n"
        unless $r->{status} == 200;
    return EBTest::prometheus($r->{body});
}

sub key {
    my ($name, %l) = @_;
    return %l ? $name . '{' . join(',', map { qq($_="$l{$_}") } sort keys %l) . '}'
              : $name;
}

sub val { my ($m, $name, %l) = @_; return $m->{ key($name, %l) } }

sub dl { my ($m, $bus, $t, $o) = @_;
         val($m, 'ebd_deliveries_total', bus => $bus, target => $t, outcome => $o) }

# waits until $cond->(page) holds; returns the last page
sub settle {
    my ($cond, $timeout, %o) = @_;
    my $m;
    wait_for(sub { $m = scrape(%o); $cond->($m) }, $timeout // 15);
    return $m;
}

sub group {
    my ($bus, $t, $r) = @_;
    my $g = ($r // $redis)->cmd('XINFO', 'GROUPS', "eb:{$bus}:target:$t");
    return {} unless ref $g eq 'ARRAY' && @$g;
    return { @{ $g->[0] } };
}

sub acked {
    my ($bus, $t) = @_;
    my $g = group($bus, $t);
    return defined $g->{pending} && $g->{pending} == 0 && ($g->{lag} // -1) == 0;
}

# every route: attempts are the sum of the outcomes; every histogram:
# buckets cumulative, +Inf is the count
sub invariants {
    my ($m, $families, $what) = @_;
    my @bad;
    for my $r (@ROUTES) {
        my ($b, $t) = @$r;
        my $sum = 0;
        $sum += dl($m, $b, $t, $_) // 0
            for qw(delivered retried dead_lettered discarded dropped);
        my $a = val($m, 'ebd_delivery_attempts_total', bus => $b, target => $t) // -1;
        push @bad, "$b/$t: $a attempts, outcomes $sum" if $a != $sum;
    }
    for my $f (grep { $_->{type} eq 'histogram' } @$families) {
        my %h;
        for my $s (@{ $f->{samples} }) {
            my %l = %{ $s->{labels} };
            my $le = delete $l{le};
            my $id = join ',', map { "$_=$l{$_}" } sort keys %l;
            if ($s->{name} =~ /_bucket$/) {
                push @{ $h{$id}{b} }, [ $le eq '+Inf' ? 9**9**9 : $le, $s->{value} ];
            } elsif ($s->{name} =~ /_count$/) {
                $h{$id}{count} = $s->{value};
            }
        }
        for my $id (sort keys %h) {
            my @b = sort { $a->[0] <=> $b->[0] } @{ $h{$id}{b} };
            for my $i (1 .. $#b) {
                push @bad, "$f->{name}\{$id\}: bucket $b[$i][0] < $b[$i-1][0]"
                    if $b[$i][1] < $b[$i - 1][1];
            }
            push @bad, "$f->{name}\{$id\}: +Inf $b[-1][1] != count $h{$id}{count}"
                unless @b && $b[-1][0] == 9**9**9 && $b[-1][1] == $h{$id}{count};
        }
    }
    ok(!@bad, "invariants hold: $what") or diag join "\n", @bad;
}

sub start_ebd {
    my (%o) = @_;
    my $e = EBTest::Ebd->start(config => "$dir/buses.json", redis => $redis,
                               name => $o{name} // 'c1',
                               args => [ '--metrics', "127.0.0.1:$mport",
                                         '--grace', '3s', @{ $o{args} // [] } ]);
    return $e;
}

# --- 1. the page -----------------------------------------------------------------

my $ebd = start_ebd();
ok($ebd->alive && $ebd->log =~ /ebd: ready: consumer "c1", $NR route/,
   'ebd ready with --metrics') or BAIL_OUT("ebd did not start:\n" . $ebd->log);
like($ebd->log, qr{metrics on http://127\.0\.0\.1:$mport/metrics},
     'it says where the metrics are');

{
    my $r = get('/metrics');
    is($r->{status}, 200, 'GET /metrics: 200');
    is($r->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
       'the text format\'s content type');
    my ($m, $fam) = EBTest::prometheus($r->{body});
    my %types = map { $_->{name} => $_->{type} } @$fam;
    my %want = (ebd_deliveries => 'counter', ebd_delivery_attempts => 'counter',
                ebd_delivery_duration_seconds => 'histogram',
                ebd_event_delivery_latency_seconds => 'histogram',
                ebd_retry_waiting_entries => 'gauge', ebd_backlog_entries => 'gauge',
                ebd_circuit_open => 'gauge', ebd_circuit_opened => 'counter',
                ebd_target_paused => 'gauge', ebd_ordered_partitions => 'gauge',
                ebd_pending_entries => 'gauge', ebd_dead_letter_entries => 'gauge',
                ebd_oauth_token_fetches => 'counter', ebd_redis_connections => 'gauge',
                ebd_workers => 'gauge', ebd_worker_restarts => 'counter',
                ebd_build_info => 'gauge', process_start_time_seconds => 'gauge');
    is_deeply(\%types, \%want, 'every family, with its type');
    ok(!grep({ !length $_->{help} } @$fam), 'every family has a HELP text');
    is(val($m, 'ebd_workers'), 1, 'ebd_workers 1');
    my ($version) = `$EBD -V` =~ /ebd (\S+)/;
    is(val($m, 'ebd_build_info', version => $version), 1, "build info: version $version");
    my $st = val($m, 'process_start_time_seconds');
    ok($st >= $t0 - 1 && $st <= time + 1, "process start time ($st)");
    is(scalar(grep { /^ebd_deliveries_total\{/ } keys %$m), 5 * @ROUTES,
       "five outcomes for each of the " . @ROUTES . " routes, from the start");
    is(dl($m, 'b1', 'ok', 'delivered'), 0, 'nothing delivered yet');
    is(val($m, 'ebd_delivery_duration_seconds_count', target => 'ok'), 0,
       'the duration histogram is by target');
    ok(!defined val($m, 'ebd_delivery_duration_seconds_count', bus => 'b1', target => 'ok'),
       '... without the bus');
    is(val($m, 'ebd_worker_restarts_total'), 0, 'no worker restarted');
    # the states are published every tick (100 ms)
    $m = settle(sub { (val($_[0], 'ebd_redis_connections', role => 'reader',
                           state => 'up') // 0) == $NR }, 5);
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'up'),
       $NR, "redis: $NR readers up");
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'down'), 0,
       'redis: none down');
    is(val($m, 'ebd_redis_connections', role => 'command', state => 'up'), 2,
       'redis: a command connection per bus');
}

# --- 2. deliveries, attempts, the histograms -----------------------------------

xadd('b1', 'ok', 20);
xadd('b2', 'ok', 5);
{
    my $m = settle(sub { dl($_[0], 'b1', 'ok', 'delivered') == 20
                         && dl($_[0], 'b2', 'ok', 'delivered') == 5 });
    is(dl($m, 'b1', 'ok', 'delivered'), 20, 'b1/ok: 20 delivered');
    is(dl($m, 'b2', 'ok', 'delivered'), 5, 'b2/ok: 5 delivered');
    my $got = grep { $_->{status} == 200 } @{ $peer->requests(path => '/ok') };
    is($got, 25, 'the peer received the 25');
    is(val($m, 'ebd_delivery_attempts_total', bus => 'b1', target => 'ok'), 20,
       'b1/ok: 20 attempts');
    is(dl($m, 'b1', 'ok', $_), 0, "b1/ok: 0 $_") for qw(retried dead_lettered discarded dropped);
    is(val($m, 'ebd_delivery_duration_seconds_count', target => 'ok'), 25,
       'duration of target ok: both buses\' 25 attempts');
    is(val($m, 'ebd_delivery_duration_seconds_bucket', target => 'ok', le => '+Inf'), 25,
       'duration: +Inf bucket 25');
    ok(val($m, 'ebd_delivery_duration_seconds_sum', target => 'ok') > 0,
       'duration: a sum');
    is(val($m, 'ebd_event_delivery_latency_seconds_count', bus => 'b1', target => 'ok'), 20,
       'latency b1/ok: count 20, one per delivered event');
    is(val($m, 'ebd_event_delivery_latency_seconds_count', bus => 'b2', target => 'ok'), 5,
       'latency b2/ok: count 5');
    is(val($m, 'ebd_event_delivery_latency_seconds_bucket', bus => 'b1', target => 'ok',
         le => '86400'), 20, 'latency: all under a day');
    my (undef, $fam) = EBTest::prometheus(get('/metrics')->{body});
    invariants($m, $fam, 'after deliveries');
}

# --- 3. retries, dead letters, discarded ------------------------------------------

xadd('b1', 'fail', 3);
xadd('b1', 'dropper', 2);
xadd('b1', 'patient', 2);
{
    my $m = settle(sub {
        dl($_[0], 'b1', 'fail', 'dead_lettered') == 3
            && dl($_[0], 'b1', 'dropper', 'discarded') == 2
            && (val($_[0], 'ebd_retry_waiting_entries', bus => 'b1', target => 'patient') // 0) == 2
            && (val($_[0], 'ebd_dead_letter_entries', bus => 'b1', target => 'fail') // -1) == 3
            && (val($_[0], 'ebd_pending_entries', bus => 'b1', target => 'patient') // -1) == 2
    }, 20);
    is(dl($m, 'b1', 'fail', 'retried'), 6, 'fail: 2 retries each: 6 retried');
    is(dl($m, 'b1', 'fail', 'dead_lettered'), 3, 'fail: 3 dead-lettered');
    is(dl($m, 'b1', 'fail', 'delivered'), 0, 'fail: none delivered');
    is(val($m, 'ebd_delivery_attempts_total', bus => 'b1', target => 'fail'), 9,
       'fail: 9 attempts');
    is(scalar @{ $peer->requests(path => '/fail') }, 9, '... as the peer saw');
    is(val($m, 'ebd_event_delivery_latency_seconds_count', bus => 'b1', target => 'fail'), 0,
       'fail: no delivery latency observed');
    is(val($m, 'ebd_delivery_duration_seconds_count', target => 'fail'), 9,
       'fail: 9 attempt durations');
    my $xlen = $redis->xlen('eb:{b1}:dlq:fail');
    is($xlen, 3, 'three dead letters in eb:{b1}:dlq:fail');
    is(val($m, 'ebd_dead_letter_entries', bus => 'b1', target => 'fail'), $xlen,
       'ebd_dead_letter_entries = XLEN of the dead-letter stream');
    is(val($m, 'ebd_retry_waiting_entries', bus => 'b1', target => 'fail'), 0,
       'fail: nothing waits any more');
    is(dl($m, 'b1', 'dropper', 'discarded'), 2, 'dropper: 2 discarded');
    is(val($m, 'ebd_dead_letter_entries', bus => 'b1', target => 'dropper'), 0,
       'dropper: no dead letters');
    is(dl($m, 'b1', 'patient', 'retried'), 2, 'patient: 2 retried');
    is(val($m, 'ebd_retry_waiting_entries', bus => 'b1', target => 'patient'), 2,
       'patient: 2 entries wait for their retry');
    is(val($m, 'ebd_pending_entries', bus => 'b1', target => 'patient'),
       group('b1', 'patient')->{pending}, 'patient: pending as XINFO GROUPS says (2)');
    is(val($m, 'ebd_backlog_entries', bus => 'b1', target => 'patient'), 0,
       'patient: nothing left unread');
    my (undef, $fam) = EBTest::prometheus(get('/metrics')->{body});
    invariants($m, $fam, 'after failures');
}

# --- 4. OAuth2 token fetches ------------------------------------------------------

xadd('b1', 'secure', 3);
xadd('b1', 'badauth', 1);
xadd('b1', 'notoken', 2);
{
    my $m = settle(sub { dl($_[0], 'b1', 'secure', 'delivered') == 3
                         && dl($_[0], 'b1', 'badauth', 'dead_lettered') == 1
                         && dl($_[0], 'b1', 'notoken', 'dead_lettered') == 2 });
    my $tokens = $peer->requests(path => '/token');
    my $ok = grep { $_->{status} == 200 } @$tokens;
    my $refused = grep { $_->{status} == 401 } @$tokens;
    is($ok, 1, 'one token fetched for three deliveries');
    is(val($m, 'ebd_oauth_token_fetches_total', connection => 'oa', outcome => 'ok'), $ok,
       'oauth: ok fetches as the token endpoint answered');
    is($refused, 2, 'the wrong secret was refused twice (an attempt and its retry)');
    is(val($m, 'ebd_oauth_token_fetches_total', connection => 'oabad',
         outcome => 'http_error'), $refused, 'oauth: http_error counted');
    is(val($m, 'ebd_oauth_token_fetches_total', connection => 'oa',
         outcome => $_), 0, "oauth: no $_") for qw(http_error transport_error invalid_answer);
    is(val($m, 'ebd_oauth_token_fetches_total', connection => 'oadown',
         outcome => 'transport_error'), 1,
       'oauth: a token endpoint nobody listens on: 1 transport error (the second attempt came during the backoff)');
    is(val($m, 'ebd_oauth_token_fetches_total', connection => 'oadown', outcome => 'ok'), 0,
       'oauth: ... and no token');
}

# --- 5. backlog: a target that keeps order and is down ---------------------------

xadd('b1', 'none', 10);
{
    # fault tolerance NONE: one in flight or waiting, one queued, the rest
    # left unread in the stream
    my $m = settle(sub {
        (val($_[0], 'ebd_backlog_entries', bus => 'b1', target => 'none') // 0) == 8
            && (val($_[0], 'ebd_pending_entries', bus => 'b1', target => 'none') // 0) == 2
    }, 20);
    my $g = group('b1', 'none');
    is(val($m, 'ebd_backlog_entries', bus => 'b1', target => 'none'), 8,
       'backlog: 8 entries not read while the target is down');
    is($g->{lag}, 8, '... XINFO GROUPS lag says 8 too');
    is(val($m, 'ebd_pending_entries', bus => 'b1', target => 'none'), $g->{pending},
       "pending: $g->{pending}, as XINFO GROUPS says");
    ok(dl($m, 'b1', 'none', 'retried') >= 1, 'the first entry is retried');

    $ctl{paths}{'/none'} = 200;
    $peer->control(\%ctl);
    $m = settle(sub {
        dl($_[0], 'b1', 'none', 'delivered') == 10
            && (val($_[0], 'ebd_backlog_entries', bus => 'b1', target => 'none') // -1) == 0
            && (val($_[0], 'ebd_pending_entries', bus => 'b1', target => 'none') // -1) == 0
    }, 25);
    is(dl($m, 'b1', 'none', 'delivered'), 10, 'the target is back: all 10 delivered');
    is(val($m, 'ebd_backlog_entries', bus => 'b1', target => 'none'), 0, 'backlog 0');
    is(val($m, 'ebd_pending_entries', bus => 'b1', target => 'none'), 0, 'pending 0');
    ok(acked('b1', 'none'), '... as Redis says');
}

# --- 6. the listener ----------------------------------------------------------------

{
    my $r = get('/other');
    is($r->{status}, 404, 'another path: 404');
    is(get('/')->{status}, 404, '/: 404');
    is(get('/metricsx')->{status}, 404, '/metricsx: 404');
    is(get('/metrics?x=1')->{status}, 200, 'a query string is ignored');
    $r = get('/metrics', method => 'POST');
    is($r->{status}, 405, 'POST /metrics: 405');
    is($r->{headers}{allow}, 'GET, HEAD', '... with Allow');
    $r = get('/metrics', method => 'HEAD');
    is($r->{status}, 200, 'HEAD /metrics: 200');
    ok($r->{headers}{'content-length'} > 1000 && $r->{body} eq '',
       '... a length, no body');
    $r = EBTest::http(port => $mport, raw => "garbage\r\n\r\n");
    is($r->{status}, 400, 'not HTTP: 400');
    $r = EBTest::http(port => $mport, raw => "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                             . ('X-Pad: ' . ('a' x 100) . "\r\n") x 100);
    is($r->{status}, 431, 'a head over 8 KiB: 431');
    $r = EBTest::http(port => $mport, raw => 'GET /' . ('a' x 9000) . " HTTP/1.1\r\n\r\n");
    is($r->{status}, 414, 'a request line over 8 KiB: 414');
    $r = EBTest::http(port => $mport, raw => "GET /metrics HTTP/1.1\r\n\r\n");
    is($r->{status}, 400, 'HTTP/1.1 without Host: 400');
    $r = EBTest::http(port => $mport, raw => "GET /metrics HTTP/1.0\r\n\r\n");
    is($r->{status}, 200, 'HTTP/1.0 without Host: 200');
    like($r->{body}, qr/^ebd_build_info\{/m, '... the page');
    $r = EBTest::http(port => $mport, raw => "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n");
    is($r->{status}, 505, 'HTTP/2.0: 505');

    # 16 idle connections per worker; the 17th is closed at once
    my @idle = map { IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $mport)
                     or die "connect: $@" } 1 .. 16;
    sleep 0.3;
    my $extra = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $mport,
                                    Timeout => 2);
    my $got = '';
    if ($extra) {
        $extra->blocking(1);
        local $SIG{ALRM} = sub { die "alarm\n" };
        eval { alarm 3; sysread($extra, $got, 100); alarm 0; 1 } or $got = 'timed out';
    }
    is($got, '', 'the 17th connection is closed at once');
    is(get('/metrics')->{status}, 0, 'a scrape meanwhile is refused too');
    # the idle ones are closed by ebd within the read timeout (5 s)
    my $closed = 0;
    my $t = time;
    for my $s (@idle) {
        my $buf;
        local $SIG{ALRM} = sub { die "alarm\n" };
        my $rn = eval { alarm 8; my $x = sysread($s, $buf, 100); alarm 0; $x };
        $closed++ if defined $rn && $rn == 0;
    }
    is($closed, 16, 'idle connections are closed by ebd');
    ok(time - $t < 7, sprintf('within the read timeout (%.1f s)', time - $t));
    is(get('/metrics')->{status}, 200, 'then scrapes are answered again');
}

# --- 7. SIGHUP: counters kept, a new route --------------------------------------

{
    my $new = $JSON->decode($JSON->encode($cfg));
    $new->{buses}{b3} = { rules => { 'r-ok' => { pattern => { source => ['s'] },
                                               targets => [ { target => 'ok' } ] } } };
    write_file("$dir/buses.json", $JSON->encode($new));
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /configuration reloaded/ }, 15), 'reloaded');
    # the new route is on the page as soon as it is set up; its two
    # connections count once their handshakes are done
    my $m = settle(sub { defined dl($_[0], 'b3', 'ok', 'delivered')
                         && (val($_[0], 'ebd_retry_waiting_entries', bus => 'b1',
                               target => 'patient') // 0) == 2
                         && (val($_[0], 'ebd_redis_connections', role => 'reader',
                                 state => 'up') // 0) == $NR + 1
                         && (val($_[0], 'ebd_redis_connections', role => 'command',
                                 state => 'up') // 0) == 3 });
    is(dl($m, 'b1', 'ok', 'delivered'), 20, 'b1/ok: still 20 delivered');
    is(dl($m, 'b1', 'fail', 'dead_lettered'), 3, 'b1/fail: still 3 dead-lettered');
    is(val($m, 'ebd_delivery_duration_seconds_count', target => 'ok'), 25,
       'histograms kept too');
    is(val($m, 'ebd_retry_waiting_entries', bus => 'b1', target => 'patient'), 2,
       'the 2 entries waiting for a retry still wait after the reload');
    is(dl($m, 'b3', 'ok', 'delivered'), 0, 'the new route b3/ok is on the page');
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'up'), $NR + 1,
       'redis: a reader more');
    is(val($m, 'ebd_redis_connections', role => 'command', state => 'up'), 3,
       'redis: 3 command connections');
    xadd('b3', 'ok', 2);
    $m = settle(sub { dl($_[0], 'b3', 'ok', 'delivered') == 2 });
    is(dl($m, 'b3', 'ok', 'delivered'), 2, 'b3/ok: 2 delivered');
    is(val($m, 'ebd_delivery_duration_seconds_count', target => 'ok'), 27,
       'target ok: 27 attempts over three buses');
    write_file("$dir/buses.json", $JSON->encode($cfg));
    $ebd->reload;
    ok(wait_for(sub { my @n = $ebd->log =~ /configuration reloaded/g; @n == 2 }, 15),
       'reloaded the first configuration again');
}

# --- 8. Redis down, Redis back ------------------------------------------------------

{
    $redis->stop;
    my $m = settle(sub {
        (val($_[0], 'ebd_redis_connections', role => 'reader', state => 'up') // -1) == 0
    }, 20);
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'up'), 0,
       'Redis killed: no reader up');
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'down'), $NR,
       "... all $NR down");
    is(val($m, 'ebd_redis_connections', role => 'command', state => 'down'), 2,
       '... and both command connections');
    is(dl($m, 'b1', 'ok', 'delivered'), 20, 'the counters stay meanwhile');
    # what only Redis knows is left out once it is stale (16 s)
    $m = settle(sub { !grep { /^ebd_(backlog|pending|dead_letter)_entries\{/ } keys %{ $_[0] } },
                25);
    is(scalar(grep { /^ebd_(backlog|pending|dead_letter)_entries\{/ } keys %$m), 0,
       'Redis down: backlog, pending and dead-letter figures left out, not shown stale');
    is(val($m, 'ebd_retry_waiting_entries', bus => 'b1', target => 'patient'), 2,
       '... what ebd knows itself stays');
    $redis->restart;
    $m = settle(sub {
        (val($_[0], 'ebd_redis_connections', role => 'reader', state => 'up') // -1) == $NR
            && (val($_[0], 'ebd_redis_connections', role => 'command', state => 'up') // -1) == 2
    }, 20);
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'up'), $NR,
       "Redis back: $NR readers up");
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'down'), 0, '... none down');
    is(val($m, 'ebd_redis_connections', role => 'command', state => 'up'), 2,
       '... both command connections up');
    $m = settle(sub { defined val($_[0], 'ebd_dead_letter_entries', bus => 'b1',
                                  target => 'fail') }, 15);
    is(val($m, 'ebd_dead_letter_entries', bus => 'b1', target => 'fail'), 3,
       '... and the dead letters are counted again (3)');
    xadd('b1', 'ok', 1);
    $m = settle(sub { dl($_[0], 'b1', 'ok', 'delivered') == 21 });
    is(dl($m, 'b1', 'ok', 'delivered'), 21, 'and it delivers again');
}

$ebd->finish;

# --- 9. bad addresses -----------------------------------------------------------------

sub ebd_run {
    my @args = @_;
    my $cmd = join ' ', map { "'$_'" } $EBD, '-c', "$dir/buses.json",
        '-r', $redis->addr, @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

{
    my ($rc, $out) = ebd_run('--metrics', '127.0.0.1');
    is($rc, 2, '--metrics without a port: exit 2');
    like($out, qr/--metrics: .*HOST:PORT/, '... the message names --metrics') or diag $out;
    ($rc, $out) = ebd_run('--metrics', '127.0.0.1:70000');
    is($rc, 2, '--metrics with a bad port: exit 2');
    like($out, qr/--metrics: invalid port/, '... named') or diag $out;
    ($rc, $out) = ebd_run('--metrics', '::1:9464');
    is($rc, 2, 'IPv6 without brackets: exit 2');
    my $busy = $peer->port;
    ($rc, $out) = ebd_run('--metrics', "127.0.0.1:$busy");
    is($rc, 1, 'a port in use: exit 1');
    like($out, qr/--metrics 127\.0\.0\.1:$busy: the address is in use/,
         '... says so, naming --metrics') or diag $out;
    unlike($out, qr/ready/, '... before anything started');
    ($rc, $out) = ebd_run('-w', '2', '--metrics', "127.0.0.1:$busy");
    is($rc, 1, '-w 2, a port in use: exit 1 from the master');
    like($out, qr/--metrics 127\.0\.0\.1:$busy: the address is in use/, '... named')
        or diag $out;
    ($rc, $out) = ebd_run('--metrics', 'no-such-host.invalid:9464');
    is($rc, 1, 'a name that does not resolve: exit 1');
    like($out, qr/--metrics no-such-host\.invalid:9464: cannot resolve/, '... named')
        or diag $out;
}

# --- 10. -w 2: both workers' counts, a killed worker's kept -------------------------

{
    $mport = EBTest::free_port();
    my $w = start_ebd(name => 'w', args => [ '-w', '2' ]);
    ok(wait_for(sub { my @r = $w->log =~ /ebd: ready/g; @r == 2 }, 15),
       '-w 2: both workers ready') or diag $w->log;
    my $m = scrape();
    is(val($m, 'ebd_workers'), 2, 'ebd_workers 2');
    is(dl($m, 'b1', 'spread', 'delivered'), 0, 'new counters: nothing delivered');

    # a slow target, one at a time per worker: both take entries
    my %busy;
    xadd('b1', 'spread', 20);
    wait_for(sub {
        my $c = $redis->cmd('XINFO', 'CONSUMERS', 'eb:{b1}:target:spread', 'ebd');
        for my $x (ref $c eq 'ARRAY' ? @$c : ()) {
            my %x = @$x;
            $busy{ $x{name} }++ if $x{pending} > 0;
        }
        my $d = grep { $_->{status} == 200 } @{ $peer->requests(path => '/spread') };
        return $d >= 20;
    }, 20);
    is_deeply([ sort keys %busy ], [ 'w-1', 'w-2' ], 'both workers delivered some');
    $m = settle(sub { dl($_[0], 'b1', 'spread', 'delivered') == 20 });
    is(dl($m, 'b1', 'spread', 'delivered'), 20, 'the page shows the sum: 20 delivered');
    is(val($m, 'ebd_delivery_attempts_total', bus => 'b1', target => 'spread'), 20,
       '20 attempts');
    is(val($m, 'ebd_event_delivery_latency_seconds_count', bus => 'b1', target => 'spread'),
       20, 'latency count 20');
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'up'), 2 * $NR,
       "redis: $NR readers per worker");

    my @same = map { dl(scalar scrape(), 'b1', 'spread', 'delivered') } 1 .. 8;
    is_deeply(\@same, [ (20) x 8 ], 'every scrape, whichever worker answers, says 20');

    my @pids = `pgrep -P $w->{pid}`;
    chomp @pids;
    is(scalar @pids, 2, 'two worker processes');
    kill 'KILL', $pids[0];
    ok(wait_for(sub { $w->log =~ /killed by signal 9; starting it again/ }, 10),
       'a worker killed, the master starts it again');
    $m = settle(sub { (val($_[0], 'ebd_worker_restarts_total') // 0) == 1
                      && (val($_[0], 'ebd_redis_connections', role => 'reader',
                            state => 'up') // 0) == 2 * $NR }, 20);
    is(val($m, 'ebd_worker_restarts_total'), 1, 'ebd_worker_restarts_total 1');
    is(dl($m, 'b1', 'spread', 'delivered'), 20, 'the killed worker\'s deliveries are still counted');
    xadd('b1', 'spread', 4);
    $m = settle(sub { dl($_[0], 'b1', 'spread', 'delivered') == 24 });
    is(dl($m, 'b1', 'spread', 'delivered'), 24, 'and counting goes on: 24');
    my (undef, $fam) = EBTest::prometheus(get('/metrics')->{body});
    invariants($m, $fam, '-w 2');
    $w->finish;
}

# --- 11. Redis Cluster: buses on two primaries --------------------------------------

{
    my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 0);
    my @bus = $c->bus_names(2);
    my $ccfg = {
        targets => { ok => http_target('/ok'),
                     fail => http_target('/fail', retry => { %$fast, attempts => 0 }) },
        buses => { map { my $b = $_; ($b => { rules => { map {
            ("r-$_" => { pattern => { source => ['s'] }, targets => [ { target => $_ } ] })
        } qw(ok fail) } }) } @bus },
    };
    write_file($c->dir . '/buses.json', $JSON->encode($ccfg));
    $mport = EBTest::free_port();
    my $e = EBTest::Ebd->start(config => $c->dir . '/buses.json',
                               redis_addr => join(',', $c->seeds), name => 'k',
                               args => [ '--cluster', '--metrics', "127.0.0.1:$mport" ]);
    ok($e->alive && $e->log =~ /ebd: ready: consumer "k", 4 route/, 'cluster: ebd ready')
        or diag $e->log;
    for my $b (@bus) {
        for my $t (qw(ok ok fail fail fail)) {
            my $ev = $JSON->encode({ specversion => '1.0', id => 'c-' . ++$n, source => 's',
                                     type => 't', data => {} });
            $c->cmd_key("eb:{$b}:target:$t", 'XADD', "eb:{$b}:target:$t", '*',
                        'event', $ev, 'rule', "r-$t");
        }
    }
    my $m = settle(sub {
        my $m = $_[0];
        for my $b (@bus) {
            return 0 unless dl($m, $b, 'ok', 'delivered') == 2
                && (val($m, 'ebd_dead_letter_entries', bus => $b, target => 'fail') // -1) == 3
                && defined val($m, 'ebd_backlog_entries', bus => $b, target => 'ok');
        }
        return 1;
    }, 20);
    for my $b (@bus) {
        is(dl($m, $b, 'ok', 'delivered'), 2, "cluster $b: 2 delivered");
        is(dl($m, $b, 'fail', 'dead_lettered'), 3, "cluster $b: 3 dead-lettered");
        is(val($m, 'ebd_dead_letter_entries', bus => $b, target => 'fail'),
           $c->xlen("eb:{$b}:dlq:fail"), "cluster $b: dead letters as XLEN on its primary ("
           . $c->primary_of_key("{$b}")->port . ')');
        is(val($m, 'ebd_backlog_entries', bus => $b, target => 'ok'), 0, "cluster $b: backlog 0");
        is(val($m, 'ebd_pending_entries', bus => $b, target => 'fail'), 0, "cluster $b: pending 0");
    }
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'up'), 4,
       'cluster: 4 readers up');
    $e->finish;
    $c->stop;
}

# --- 12. Sentinel -------------------------------------------------------------------------

{
    my $s = EBTest::Sentinel->start(replicas => 0, sentinels => 1, quorum => 1);
    write_file($s->dir . '/buses.json', $JSON->encode($cfg));
    $mport = EBTest::free_port();
    my $e = EBTest::Ebd->start(config => $s->dir . '/buses.json',
                               redis_addr => join(',', $s->sentinel_addrs), name => 's',
                               args => [ '--sentinel', $s->master_name,
                                         '--metrics', "127.0.0.1:$mport" ]);
    ok($e->alive && $e->log =~ /ebd: ready: consumer "s"/, 'sentinel: ebd ready')
        or diag $e->log;
    my ($primary) = $s->nodes;
    xadd('b1', 'ok', 2, $primary);
    xadd('b1', 'fail', 1, $primary);
    my $m = settle(sub {
        dl($_[0], 'b1', 'ok', 'delivered') == 2
            && (val($_[0], 'ebd_dead_letter_entries', bus => 'b1', target => 'fail') // -1) == 1
            && defined val($_[0], 'ebd_backlog_entries', bus => 'b1', target => 'ok')
    }, 20);
    is(dl($m, 'b1', 'ok', 'delivered'), 2, 'sentinel: 2 delivered');
    is(val($m, 'ebd_dead_letter_entries', bus => 'b1', target => 'fail'), 1,
       'sentinel: 1 dead letter, read from the primary the sentinel names');
    is(val($m, 'ebd_backlog_entries', bus => 'b1', target => 'ok'), 0, 'sentinel: backlog 0');
    is(val($m, 'ebd_redis_connections', role => 'reader', state => 'up'), $NR,
       "sentinel: $NR readers up");
    $e->finish;
    $s->stop;
}

diag sprintf('%.0f s', time - $t0);
done_testing;
