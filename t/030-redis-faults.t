#!/usr/bin/perl
# Redis faults and connection options, end to end: Redis stopped and
# restarted (reconnect without reload), Redis frozen (per-request timeout),
# the bounded queue of in-flight appends, AUTH (right and wrong password),
# SELECT db=N, a unix-socket address, approximate MAXLEN trimming, a Redis
# error reply, and the metrics each of these leaves behind.
use strict;
use warnings;
use Test::More;
use IO::Select;
use IO::Socket::IP;
use IO::Socket::UNIX;
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for);

# --- local helpers ----------------------------------------------------------

# Processes this file froze (SIGSTOP) or started itself: a frozen Redis must
# always be thawed, or the harness's cleanup (TERM + waitpid) would hang.
my @frozen;
my @own;

sub thaw_all { kill 'CONT', $_ for @frozen; @frozen = () }

sub stop_own {
    for my $pid (@own) {
        kill 'TERM', $pid;
        my $end = time + 10;
        while (time < $end) {
            last if waitpid($pid, POSIX::WNOHANG()) != 0;
            sleep 0.05;
        }
        if (kill 0, $pid) { kill 'KILL', $pid; waitpid $pid, 0 }
    }
    @own = ();
}

# END blocks run last-defined first: this one runs before EBTest's.
END { my $rc = $?; thaw_all(); stop_own(); $? = $rc; }
$SIG{INT} = $SIG{TERM} = sub { thaw_all(); stop_own(); EBTest::cleanup_all(); exit 1 };

# Runs $code with the Redis process stopped; always continues it afterwards.
sub with_frozen {
    my ($pid, $code) = @_;
    kill 'STOP', $pid or die "cannot stop redis $pid: $!";
    push @frozen, $pid;
    my $ok = eval { $code->(); 1 };
    my $err = $@;
    kill 'CONT', $pid;
    @frozen = grep { $_ != $pid } @frozen;
    die $err unless $ok;
}

sub post {
    my ($ngx, $path, %o) = @_;
    return $ngx->request(method => 'POST', path => $path,
                         headers => ['Content-Type' => 'application/json'],
                         body => $o{body} // '{"n":1}',
                         timeout => $o{timeout} // 10);
}

# The status page, as { 'name{labels}' => value }, read by Prometheus's
# parser.
sub metrics { $_[0]->metrics }

sub rerr { 'eventbridge_redis_errors_total{kind="' . $_[0] . '"}' }
sub rej { 'eventbridge_events_rejected_total{reason="' . $_[0] . '"}' }
use constant ACC => 'eventbridge_events_accepted_total';

# A request sent on a socket whose answer is read later (concurrency
# without fork).
sub send_request {
    my ($port, $path, $body) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'tcp', Timeout => 5)
        or die "connect: $@";
    local $SIG{PIPE} = 'IGNORE';
    print {$s} "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}

sub read_response {
    my ($s, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $end = time + $timeout;
    my $resp = '';
    while ((my $left = $end - time) > 0) {
        next unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        last if !$n;
        $resp .= $buf;
    }
    close $s;
    return parse_response($resp);
}

sub parse_response {
    my ($resp) = @_;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    return { status => 0, raw => $resp }
        unless defined $head && $head =~ m{^HTTP/1\.[01] (\d+)};
    my %r = (status => $1, body => $body // '');
    for my $line (split /\r\n/, $head) {
        $r{headers}{lc $1} = $2 if $line =~ /^([^:]+):\s*(.*)$/;
    }
    $r{json} = EBTest::json_decode($r{body})
        if ($r{headers}{'content-type'} // '') =~ /json/;
    return \%r;
}

# Event ids of a stream, read through $redis (any database selected).
sub stream_ids {
    my ($redis, $key) = @_;
    my %ids;
    for my $e (@{ $redis->xrange($key) }) {
        my $ev = EBTest::json_decode($e->[1]{event} // '') // {};
        $ids{$ev->{id}} = 1 if defined $ev->{id};
    }
    return \%ids;
}

# A 503 as the issue describes it: Retry-After and a JSON error body.
sub is_unavailable {
    my ($r, $what, $msg_re) = @_;
    is($r->{status}, 503, "$what: 503");
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/,
         "$what: Retry-After in seconds");
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         "$what: JSON answer");
    is($r->{json}{errorCode}, 'ServiceUnavailable', "$what: errorCode");
    like($r->{json}{errorMessage} // '', $msg_re, "$what: errorMessage")
        if $msg_re;
}

my $uuid = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

# --- 1. stop / restart, frozen Redis (timeout), MAXLEN ~, error reply -------

my $redis = EBTest::Redis->start(appendonly => 'yes');
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_redis_timeout 300ms;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook {
            eventbridge_source faults.src bus=faults;
        }
        location /small {
            eventbridge_source small.src bus=small;
            eventbridge_stream_maxlen 10;
        }
        location /wrongtype {
            eventbridge_source wt.src bus=wrongtype;
        }
        location /status { eventbridge_status; }
    }
EOF
$ngx->start;

my ($n200, $n503) = (0, 0);

# MAXLEN ~ 10: Redis trims whole macro nodes only (stream-node-max-entries,
# 100 by default), so the stream holds at most 10 + one node's entries.
{
    my $ok = 0;
    for (1 .. 200) {
        my $r = post($ngx, '/small');
        $ok++ if $r->{status} == 200;
    }
    $n200 += $ok;
    is($ok, 200, 'maxlen: 200 events accepted');
    my $node = $redis->cmd('CONFIG', 'GET', 'stream-node-max-entries');
    $node = ref $node eq 'ARRAY' ? $node->[1] : 100;
    my $len = $redis->xlen('eb:{small}:events');
    diag("maxlen: XLEN after 200 appends with MAXLEN ~ 10: $len "
         . "(stream-node-max-entries $node)");
    cmp_ok($len, '<', 150, 'maxlen: stream trimmed well below 200');
    cmp_ok($len, '<=', 10 + $node, 'maxlen: at most maxlen + one macro node');
    cmp_ok($len, '>=', 10, 'maxlen: never trimmed below maxlen');
}

# An error reply (WRONGTYPE): 503, counted as reply_error.
{
    $redis->cmd('SET', 'eb:{wrongtype}:events', 'not a stream');
    my $r = post($ngx, '/wrongtype');
    is_unavailable($r, 'error reply', qr/error reply/);
    $n503++;
    like($ngx->error_log, qr/\[error\].*WRONGTYPE/, 'error reply logged');
}

# Redis stopped, then restarted on the same port: no reload needed.
my (@before, @after);
{
    my $r = post($ngx, '/hook');
    is($r->{status}, 200, 'before stop: 200');
    like($r->{json}{eventId} // '', $uuid, 'before stop: event id');
    push @before, $r->{json}{eventId} // 'none';
    $n200++;

    my $m0 = metrics($ngx);
    $redis->stop;

    my $down = 0;
    for my $i (1 .. 4) {
        my $t0 = time;
        my $r = post($ngx, '/hook');
        my $dt = time - $t0;
        is_unavailable($r, "redis stopped, request $i", qr/unavailable/);
        cmp_ok($dt, '<', 1, "redis stopped, request $i: answered at once")
            if $i == 1;
        $down++;
        sleep 0.25;
    }
    $n503 += $down;

    my $m1 = metrics($ngx);
    is(($m1->{rerr('disconnected')} // 0) + ($m1->{rerr('connection_lost')} // 0)
       - ($m0->{rerr('disconnected')} // 0) - ($m0->{rerr('connection_lost')} // 0),
       $down, 'redis stopped: every 503 counted as disconnected/connection_lost');
    cmp_ok($m1->{rerr('disconnected')} // 0, '>=', 1,
           'redis stopped: disconnected counted');

    $redis->restart;
    my $t0 = time;
    my $got;
    my $extra503 = 0;
    while (time - $t0 < 6) {
        my $r = post($ngx, '/hook');
        if ($r->{status} == 200) { $got = $r; last }
        $extra503++ if $r->{status} == 503;
        sleep 0.1;
    }
    my $dt = time - $t0;
    $n503 += $extra503;
    ok($got, 'redis restarted: 200 again without reload')
        or diag('still failing after ' . sprintf('%.1f', $dt) . ' s');
    diag(sprintf 'recovered %.2f s after redis came back', $dt) if $got;
    cmp_ok($dt, '<', 3.5, 'reconnected within the 2 s backoff cap (+ slack)');
    if ($got) {
        push @after, $got->{json}{eventId};
        $n200++;
    }
    for (1 .. 3) {
        my $r = post($ngx, '/hook');
        $n200++ if $r->{status} == 200;
        push @after, $r->{json}{eventId} // 'none';
    }
    my $ids = stream_ids($redis, 'eb:{faults}:events');
    ok($ids->{$before[0]}, 'event accepted before the outage is in the stream');
    is(scalar(grep { $ids->{$_} } @after), scalar @after,
       'events accepted after the restart are in the stream');
}

# Redis frozen: the request times out after eventbridge_redis_timeout.
{
    my $r = post($ngx, '/hook');
    is($r->{status}, 200, 'before freeze: 200');
    $n200++ if $r->{status} == 200;

    my ($res, $dt);
    with_frozen($redis->{pid}, sub {
        my $t0 = time;
        $res = post($ngx, '/hook', timeout => 8);
        $dt = time - $t0;
    });
    is_unavailable($res, 'redis frozen', qr/timed out/);
    $n503++;
    diag(sprintf 'frozen redis: 503 after %.3f s (timeout 300ms)', $dt);
    cmp_ok($dt, '>=', 0.2, 'frozen redis: not before the timeout');
    cmp_ok($dt, '<=', 3, 'frozen redis: soon after the timeout');

    # the late reply is dropped; the connection goes on working
    $r = post($ngx, '/hook');
    is($r->{status}, 200, 'after thaw: 200 on the same connection');
    $n200++ if $r->{status} == 200;
}

{
    my $m = metrics($ngx);
    is($m->{+ACC}, $n200, "metrics: accepted_total = $n200 (every 200)");
    is($m->{rej('unavailable')}, $n503,
       "metrics: rejected{reason=\"unavailable\"} = $n503 (every 503)");
    is($m->{rerr('timeout')}, 1, 'metrics: redis_errors{kind="timeout"} = 1');
    is($m->{rerr('reply_error')}, 1,
       'metrics: redis_errors{kind="reply_error"} = 1');
    is($m->{rerr('queue_full')}, 0,
       'metrics: redis_errors{kind="queue_full"} = 0');
    my $sum = 0;
    $sum += $m->{rerr($_)} // 0
        for qw(disconnected queue_full timeout reply_error connection_lost);
    is($sum, $n503, 'metrics: one redis error per 503');
}

like($ngx->error_log, qr/\[error\].*eventbridge: redis.*(connection lost|cannot connect)/,
     'the outage is logged as an error');
$ngx->finish;

# --- 2. eventbridge_redis_max_pending 1 --------------------------------------

{
    my $ngx2 = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_redis_timeout 3s;
    eventbridge_redis_max_pending 1;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source q.src bus=queue; }
        location /status { eventbridge_status; }
    }
EOF
    $ngx2->start;

    my $r = post($ngx2, '/hook');
    is($r->{status}, 200, 'max_pending 1: a single request passes');

    my ($first, $second, $dt);
    with_frozen($redis->{pid}, sub {
        my $s = send_request($ngx2->port, '/hook', '{"first":1}');
        sleep 0.3;              # the first append is now in flight
        my $t0 = time;
        $second = post($ngx2, '/hook', body => '{"second":1}', timeout => 5);
        $dt = time - $t0;
        $first = $s;
    });
    # thawed well before the 3 s timeout: the first request completes
    $first = read_response($first, 5);

    is_unavailable($second, 'max_pending 1, second request',
                   qr/too many|in flight/);
    cmp_ok($dt, '<', 1, 'max_pending 1: the second request is refused at once');
    is($first->{status}, 200, 'max_pending 1: the waiting first request gets 200');
    my $id = $first->{json}{eventId} // 'none';
    ok(stream_ids($redis, 'eb:{queue}:events')->{$id},
       'max_pending 1: the first event is in the stream');

    my $m = metrics($ngx2);
    is($m->{rerr('queue_full')}, 1, 'metrics: redis_errors{kind="queue_full"} = 1');
    is($m->{+ACC}, 2, 'metrics: accepted_total = 2');

    # Redis dies while an append is in flight: 503 at once (connection
    # lost), not after the 3 s timeout.
    my ($lost, $ldt);
    with_frozen($redis->{pid}, sub {
        my $s = send_request($ngx2->port, '/hook', '{"lost":1}');
        sleep 0.3;
        my $t0 = time;
        kill 'KILL', $redis->{pid};
        $lost = read_response($s, 5);
        $ldt = time - $t0;
    });
    is_unavailable($lost, 'redis killed with an append in flight',
                   qr/connection lost/);
    cmp_ok($ldt, '<', 1.5, 'redis killed: answered without waiting for the timeout');
    $m = metrics($ngx2);
    is($m->{rerr('connection_lost')}, 1,
       'metrics: redis_errors{kind="connection_lost"} = 1');
    $redis->restart;
    ok(wait_for(sub { post($ngx2, '/hook')->{status} == 200 }, 6),
       'redis restarted after the kill: 200 again');
    $ngx2->finish;
}

# --- 2b. eventbridge_redis_max_pending_bytes 4k -----------------------------------

{
    my $ngx2 = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_redis_timeout 3s;
    eventbridge_redis_max_pending_bytes 4k;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source q.src bus=queue; }
        location /status { eventbridge_status; }
    }
EOF
    $ngx2->start;

    my $big = '{"pad":"' . ('x' x 3000) . '"}';
    my $r = post($ngx2, '/hook', body => '{"pad":"' . ('y' x 6000) . '"}');
    is($r->{status}, 200, 'max_pending_bytes 4k: one 6 KB event alone passes');

    my ($first, $second, $dt);
    with_frozen($redis->{pid}, sub {
        my $s = send_request($ngx2->port, '/hook', $big);
        sleep 0.3;              # about 3.5 KB of commands in flight
        my $t0 = time;
        $second = post($ngx2, '/hook', body => $big, timeout => 5);
        $dt = time - $t0;
        $first = $s;
    });
    $first = read_response($first, 5);

    is_unavailable($second, 'max_pending_bytes 4k, a second 3 KB event',
                   qr/in flight/);
    cmp_ok($dt, '<', 1, 'max_pending_bytes: refused at once');
    is($first->{status}, 200, 'max_pending_bytes: the first event gets 200');
    my $m = metrics($ngx2);
    is($m->{rerr('queue_full')}, 1,
       'metrics: redis_errors{kind="queue_full"} = 1');
    is(post($ngx2, '/hook', body => $big)->{status}, 200,
       'max_pending_bytes: taken again once the first is answered');
    $ngx2->finish;
}

# --- 3. password= ------------------------------------------------------------

my $predis = EBTest::Redis->start(password => 'pw');
{
    my $ngx3 = EBTest::Nginx->new(redis => $predis, http => <<'EOF');
    eventbridge_redis %%REDIS%% password=pw;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source p.src bus=auth; }
    }
EOF
    $ngx3->start;
    my $r = post($ngx3, '/hook');
    is($r->{status}, 200, 'password=pw: 200');
    ok(stream_ids($predis, 'eb:{auth}:events')->{$r->{json}{eventId} // 'none'},
       'password=pw: event in the stream');
    $ngx3->finish;
}

{
    my $ngx4 = EBTest::Nginx->new(redis => $predis, http => <<'EOF');
    eventbridge_redis %%REDIS%% password=wrong;
    eventbridge_redis_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source p.src bus=auth; }
        location /status { eventbridge_status; }
    }
EOF
    my $t0 = time;
    $ngx4->start;
    my @r = map { my $r = post($ngx4, '/hook'); sleep 0.2; $r } 1 .. 3;
    is(scalar(grep { $_->{status} == 503 } @r), 3,
       'wrong password: every request gets 503');
    is_unavailable($r[0], 'wrong password');

    # The connection setup fails over and over; the retries must back off
    # (100 ms doubling to 2 s), not hammer Redis and the log.
    sleep 3;
    my @auth = grep { /AUTH/ } split /\n/, $ngx4->error_log;
    ok(scalar(grep { /\[error\]/ } @auth), 'wrong password: [error] line mentions AUTH')
        or diag($ngx4->error_log);
    unlike($ngx4->error_log, qr/\[(alert|crit)\]/, 'wrong password: no [alert]/[crit]');
    diag(sprintf 'wrong password: %d AUTH failures logged in %.1f s',
         scalar @auth, time - $t0);
    cmp_ok(scalar @auth, '<=', 10,
           'wrong password: reconnect attempts back off (<= 10 in ~4 s)');

    my $m = metrics($ngx4);
    is($m->{+ACC}, 0, 'wrong password: nothing accepted');
    is($m->{rej('unavailable')}, 3, 'wrong password: 3 unavailable counted');
    $ngx4->finish;
}
$predis->stop;

# --- 4. db=N -----------------------------------------------------------------

{
    my $ngx5 = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%% db=3;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source d.src bus=dbtest; }
    }
EOF
    $ngx5->start;
    my $r = post($ngx5, '/hook');
    is($r->{status}, 200, 'db=3: 200');
    my $id = $r->{json}{eventId} // 'none';

    is($redis->cmd('SELECT', 3), 'OK', 'SELECT 3');
    is($redis->xlen('eb:{dbtest}:events'), 1, 'db=3: one entry in database 3');
    ok(stream_ids($redis, 'eb:{dbtest}:events')->{$id},
       'db=3: the answered event is in database 3');
    $redis->cmd('SELECT', 0);
    is($redis->xlen('eb:{dbtest}:events'), 0, 'db=3: nothing in database 0');
    $ngx5->finish;
}

# A database Redis does not have: SELECT fails. The append queued behind
# the SELECT (the connection counts as ready before the SELECT is answered)
# must not be acknowledged, and must not land in database 0. Redis is
# frozen while nginx connects so that the request is queued behind the
# SELECT deterministically.
{
    my $key = 'eb:{baddb}:events';
    my $ngx7 = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%% db=99;
    eventbridge_redis_timeout 3s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source b.src bus=baddb; }
    }
EOF
    my $r;
    with_frozen($redis->{pid}, sub {
        $ngx7->start;           # the TCP connect completes in the backlog
        my $s = send_request($ngx7->port, '/hook', '{"baddb":1}');
        sleep 0.3;
        $r = $s;
    });
    $r = read_response($r, 5);
    is($r->{status}, 503, 'db=99: an append queued behind the failed SELECT gets 503')
        or diag("answer: $r->{status} $r->{body}");
    is($redis->xlen($key), 0, 'db=99: nothing written to database 0');

    sleep 0.3;
    my $len0 = $redis->xlen($key);
    $r = post($ngx7, '/hook');
    is_unavailable($r, 'db=99, later request');
    is($redis->xlen($key), $len0, 'db=99, later request: nothing more in database 0');
    like($ngx7->error_log, qr/\[error\].*SELECT failed/, 'db=99: SELECT failure logged');
    $ngx7->finish;
}

# --- 5. unix:/path -----------------------------------------------------------

{
    my $dir = tempdir('eb-uredis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $path = "$dir/redis.sock";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec('redis-server', '--port', '0', '--unixsocket', $path,
             '--unixsocketperm', '777', '--dir', $dir, '--save', '',
             '--appendonly', 'no', '--logfile', "$dir/redis.log",
             '--daemonize', 'no') or POSIX::_exit(127);
    }
    push @own, $pid;

    # EBTest::Redis speaks RESP over whatever socket it is given
    my $ur;
    wait_for(sub {
        my $s = IO::Socket::UNIX->new(Peer => $path) or return 0;
        $ur = bless { sock => $s, port => 0 }, 'EBTest::Redis';
        my $p = eval { $ur->cmd('PING') };
        return defined $p && $p eq 'PONG';
    }, 10) or die "redis-server on $path did not start";

    my $ngx6 = EBTest::Nginx->new(http => <<"EOF");
    eventbridge_redis unix:$path;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source u.src bus=unixbus; }
    }
EOF
    $ngx6->start;
    my $r = post($ngx6, '/hook');
    is($r->{status}, 200, 'unix socket: 200');
    ok(stream_ids($ur, 'eb:{unixbus}:events')->{$r->{json}{eventId} // 'none'},
       'unix socket: event in the stream');
    my $clients = $ur->cmd('CLIENT', 'LIST') // '';
    like($clients, qr/addr=\Q$path\E/, 'unix socket: nginx is a unix client');
    $ngx6->finish;
    stop_own();
}

done_testing;
