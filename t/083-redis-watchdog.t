#!/usr/bin/perl
# The watchdog of the worker's Redis connection: a connection whose
# replies stop coming (a black-holed peer: open, silent, no FIN, no RST)
# is dropped once the oldest reply is overdue, and made again, so that
# 2xx answers resume about one eventbridge_redis_timeout after the fault;
# and a peer that accepts the connection but never answers AUTH does not
# keep the worker connecting for ever.
use strict;
use warnings;
use Test::More;
use IO::Socket::IP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for);
use EBTest::Blackhole;
use EBTest::Load;


sub post {
    my ($ngx, %o) = @_;
    return $ngx->request(method => 'POST', path => '/hook',
                         headers => ['Content-Type' => 'application/json'],
                         body => $o{body} // '{"n":1}', timeout => 10);
}

sub stream_ids { EBTest::event_ids($_[0]->xrange($_[1])) }

my $redis = EBTest::Redis->start(password => 'pw');
my $proxy = EBTest::Blackhole->start(to => $redis->addr);

# an ACL user: AUTH eb ebpw
is($redis->cmd('ACL', 'SETUSER', 'eb', 'on', '>ebpw', '~*', '+@all'), 'OK',
   'ACL user eb');

my $ngx = EBTest::Nginx->new(http => <<"EOF");
    eventbridge_redis ${\ $proxy->addr } user=eb password=ebpw;
    eventbridge_redis_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source wd.src bus=wd; }
        location /status { eventbridge_status; }
    }
EOF
$ngx->start;

ok(wait_for(sub { post($ngx)->{status} == 200 }, 5),
   'through the proxy, as ACL user eb: 200');
like($redis->cmd('CLIENT', 'LIST') // '', qr/\buser=eb\b/,
     'nginx is connected as user eb');

# --- 1. black hole under steady load ------------------------------------------

{
    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $ngx->port . '/hook',
                                   rate => 40, seconds => 7, concurrency => 24,
                                   timeout => 5,
                                   body => sub { qq({"i":$_[0]}) });
    sleep 2;
    my $tb = time - $load->{t0};
    $proxy->blackhole;
    my $res = $load->wait;
    diag('black hole under load: ' . EBTest::Load->summary($res));

    # the outage: from the black hole to the first request that started
    # after it and got 2xx; nothing but 2xx after that
    my ($first_ok, $late_bad);
    for my $r (@{ $res->{requests} }) {
        my ($i, $t, $st) = @$r;
        next if $t < $tb;
        if ($st >= 200 && $st < 300) {
            $first_ok //= $t;
        } elsif (defined $first_ok && $t > $first_ok + 0.2) {
            $late_bad++;
        }
    }
    ok(defined $first_ok, 'black hole: 2xx again without a reload');
    my $outage = defined $first_ok ? $first_ok - $tb : 99;
    diag(sprintf 'black hole: 2xx again %.2f s after it (timeout 1 s, '
         . 'watchdog 1.25 s)', $outage);
    cmp_ok($outage, '<', 3, 'black hole: the 503 period lasts < 3 s');
    ok(!$late_bad, 'black hole: only 2xx once recovered')
        or diag("$late_bad later failures");
    cmp_ok($res->{s503}, '>=', 1, 'black hole: some requests got 503');
    is($res->{other} + $res->{errors}, 0,
       'black hole: every request answered, 2xx or 503');
    cmp_ok($res->{max}, '<', 2000,
           'black hole: no request waited beyond its timeout');

    my $ids = stream_ids($redis, 'eb:{wd}:events');
    my $lost = grep { !$ids->{$_} } @{ $res->{ids} };
    my $dups = grep { $_ > 1 } values %$ids;
    diag(sprintf 'black hole: acknowledged %d, found in Redis %d, lost %d, '
         . 'duplicates %d, 503s %d', scalar @{ $res->{ids} },
         scalar(keys %$ids), $lost, $dups, $res->{s503});
    is($lost, 0, 'black hole: every acknowledged event is in Redis');

    my $m = $ngx->metrics;
    cmp_ok($m->{eventbridge_redis_watchdog_drops_total} // 0, '>=', 1,
           'metrics: watchdog_drops_total counted');
    like($ngx->error_log, qr/\[error\].*redis 127\.0\.0\.1:\d+: no reply for \d+ms/,
         'the drop is logged');
}

# --- 2. a peer that accepts but never answers AUTH ----------------------------

{
    # connections complete in this socket's backlog and are never read
    my $silent = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                     Proto => 'tcp', Listen => 64,
                                     ReuseAddr => 1)
        or die "listen: $@";
    $proxy->retarget('127.0.0.1:' . $silent->sockport);
    $proxy->blackhole;          # the working connection goes silent

    my $before = $proxy->accepted;
    my $logpos = length $ngx->error_log;
    my $r = post($ngx);
    is($r->{status}, 503, 'silent peer: 503');
    sleep 4.5;
    my $made = $proxy->accepted - $before;
    diag("silent peer: $made connections made in ~5.5 s (AUTH never "
         . "answered; connect timeout 1 s, backoff 0.1-2 s)");
    cmp_ok($made, '>=', 2, 'silent peer: the worker gave up and reconnected');
    cmp_ok($made, '<=', 12, 'silent peer: with backoff, not in a loop');
    # one line per change of state, not one per attempt
    my @lines = grep { /connect timed out|no reply for/ }
                split /\n/, substr($ngx->error_log, $logpos);
    cmp_ok(scalar @lines, '>=', 1, 'silent peer: logged');
    cmp_ok(scalar @lines, '<=', 2, 'silent peer: logged once, not per attempt')
        or diag(join "\n", @lines);

    $proxy->retarget($redis->addr);
    my $t0 = time;
    ok(wait_for(sub { post($ngx)->{status} == 200 }, 8),
       'silent peer gone: 200 again');
    diag(sprintf 'silent peer gone: 200 again after %.2f s', time - $t0);
    close $silent;
}

$ngx->finish;

# --- 3. eventbridge_redis_wait with no replica: 503, the event stays -----------

{
    my $ngx2 = EBTest::Nginx->new(http => <<"EOF");
    eventbridge_redis ${\ $redis->addr } password=pw;
    eventbridge_redis_timeout 1s;
    eventbridge_redis_wait 1 100ms;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source wd.src bus=wait; }
        location /status { eventbridge_status; }
    }
EOF
    $ngx2->start;
    my $t0 = time;
    my $r = post($ngx2);
    my $dt = time - $t0;
    is($r->{status}, 503, 'WAIT 1 without replicas: 503');
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'WAIT 1 without replicas: Retry-After');
    like($r->{json}{errorMessage} // '', qr/too few replicas/,
         'WAIT 1 without replicas: the message says why');
    cmp_ok($dt, '<', 0.9, 'WAIT 1 without replicas: after WAIT\'s 100 ms, not the timeout');
    is($redis->xlen('eb:{wait}:events'), 1,
       'WAIT 1 without replicas: the event is stored all the same, once');
    my $m = $ngx2->metrics;
    is($m->{eventbridge_redis_wait_failures_total}, 1, 'metrics: wait_failures_total 1');
    is($m->{'eventbridge_redis_errors_total{kind="wait"}'}, 1,
       'metrics: redis_errors_total{kind="wait"} 1');
    like($ngx2->error_log, qr/\[warn\].*redis WAIT 1: 0 replicas acknowledged in 100ms/,
         'the WAIT failure is logged');
    $ngx2->finish;
}

done_testing;
