#!/usr/bin/perl
# eventbridge_redis sentinel=MASTER: the worker asks the sentinels for
# the primary, checks ROLE, and writes there; when the primary is killed
# the sentinels fail over and 2xx answers come back without a reload,
# every acknowledged event (eventbridge_redis_wait 1) on the new primary.
# An unknown master name: 503 at once, and one clear log line. The
# servers and the sentinels have passwords of their own (password=,
# sentinel_password=); a wrong sentinel password is one clear log line.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for);
use EBTest::Sentinel;
use EBTest::Load;

sub post {
    my ($ngx, %o) = @_;
    return $ngx->request(method => 'POST', path => $o{path} // '/hook',
                         headers => ['Content-Type' => 'application/json'],
                         body => $o{body} // '{"n":1}', timeout => 10);
}


# the events go to database 2 (db=2)
# (a failover kills the clients of the servers it reconfigures: a socket
# the test kept may be gone; one fresh connection is tried)
sub stream_ids {
    my ($redis, $key) = @_;
    for my $try (1, 2) {
        my $ids = eval {
            $redis->cmd('SELECT', 2);
            EBTest::event_ids($redis->xrange($key));
        };
        return $ids if $ids;
        diag("reading $key: $@");
        delete $redis->{sock};
    }
    return {};
}

my $PW = 'srv-pass-7c1e';
my $SPW = 'sen-pass-9b2d';
my $s = EBTest::Sentinel->start(replicas => 2, sentinels => 3,
                                down_after_ms => 1000,
                                failover_timeout_ms => 5000,
                                password => $PW, sentinel_password => $SPW);
my $sentinels = join ' ', $s->sentinel_addrs;
my $key = 'eb:{sen}:events';

my $ngx = EBTest::Nginx->new(http => <<"EOF2");
    eventbridge_redis sentinel=mymaster $sentinels db=2
                      password=$PW sentinel_password=$SPW;
    eventbridge_redis_timeout 2s;
    eventbridge_redis_wait 1 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source sen.src bus=sen; }
        location /status { eventbridge_status; }
    }
EOF2
$ngx->start;

# --- 1. events land on the primary ---------------------------------------------

my $primary = $s->primary;
my $old_addr = $primary->addr;
{
    my $r;
    wait_for(sub { $r = post($ngx); $r->{status} == 200 }, 10);
    is($r->{status}, 200, 'sentinel: 200');
    my $id = $r->{json}{eventId} // 'none';
    ok(stream_ids($primary, $key)->{$id}, "the event is on the primary ($old_addr), db 2");
    $primary->cmd('SELECT', 0);
    is($primary->xlen($key), 0, 'nothing in database 0');
    like($ngx->error_log, qr/sentinel: primary of mymaster is now \Q$old_addr\E/,
         'the primary is logged');
}

# --- 2. kill -9 the primary under load --------------------------------------------

{
    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $ngx->port . '/hook',
                                   rate => 40, seconds => 14, concurrency => 32,
                                   timeout => 5, body => sub { qq({"i":$_[0]}) });
    sleep 2;
    $primary->kill9;
    my $tk = time - $load->{t0};
    my $new_addr = $s->wait_failover($old_addr, 25);
    ok($new_addr, "sentinels failed over to " . ($new_addr // 'nothing'));
    # WAIT 1 can be met only once the final primary has a replica online:
    # after a second failover the sentinels convert the first promoted
    # server into its replica seconds later, and 503s are right until then
    my @watch = $s->watch($load->{t0} + 14, 0.1);
    my $res = $load->wait;
    diag('primary killed under load: ' . EBTest::Load->summary($res));

    # Meant: one failover. A slow machine may see a second (a leader in a
    # later epoch promotes another replica, the first is demoted and its
    # clients killed): 503s then are right, so "2xx only" is measured
    # from the last switch; no acknowledged event may be lost either way.
    my @sw = $s->switches;
    diag(sprintf 'sentinels: %s at %+.2f s', "$_->[1] -> $_->[2]",
         $_->[0] - $load->{t0} - $tk) for @sw;
    my $settled = @sw ? $sw[-1][0] - $load->{t0} : $tk;
    my $durable;
    for my $w (reverse @watch) {
        last unless $w->[1] eq $watch[-1][1] && $w->[2] >= 1;
        $durable = $w->[0] - $load->{t0};
    }
    diag(sprintf 'the primary %s has a replica online from %+.2f s',
         $watch[-1][1], $durable - $tk) if @watch && defined $durable;
    diag('the final primary had no replica online by the end of the load: '
         . 'WAIT 1 could not be met, 503s were right') unless defined $durable;
    $settled = $durable // 1e9 if !defined $durable || $durable > $settled;

    # requests sent after the kill: the first to get 2xx (by start), the
    # first 2xx answer (by end), failures once they succeed again
    my ($first_ok, $first_answer, @late_bad) = (undef, undef);
    for my $r (@{ $res->{requests} }) {
        my ($i, $t, $st, $ms) = @$r;
        next if $t < $tk;
        if ($st >= 200 && $st < 300) {
            $first_ok //= $t;
            my $end = $t + $ms / 1000;
            $first_answer = $end if !defined $first_answer || $end < $first_answer;
        }
        elsif (defined $first_ok && $t > $first_ok + 0.5 && $t > $settled + 0.5) {
            push @late_bad, $r;
        }
    }
    ok(defined $first_ok, 'after the failover: 2xx again without a reload');
    diag(sprintf 'primary killed: first 2xx answer %.2f s later; slowest '
         . 'answer %.2f s (timeout 2 s)', ($first_answer // 99) - $tk,
         $res->{max} / 1000);
    unless (is(scalar @late_bad, 0, 'after the failover: 2xx only')) {
        diag(sprintf 'request %d at %+.2f s: %s in %.0f ms', $_->[0],
             $_->[1] - $tk, $_->[2], $_->[3])
            for @late_bad[0 .. ($#late_bad < 4 ? $#late_bad : 4)];
        diag(join "\n", grep { /redis|sentinel/ } split /\n/, $ngx->error_log);
    }
    is($res->{other} + $res->{errors}, 0, 'every request answered, 2xx or 503');

    my $new = $s->node_by_addr($new_addr // '');
    my $ids = $new ? stream_ids($new, $key) : {};
    my $lost = grep { !$ids->{$_} } @{ $res->{ids} };
    my $dups = grep { $_ > 1 } values %$ids;
    diag(sprintf 'primary killed: acknowledged %d, found on the new primary '
         . '%d, lost %d, duplicates %d, 503s %d', scalar @{ $res->{ids} },
         scalar(keys %$ids), $lost, $dups, $res->{s503});
    is($lost, 0, 'every acknowledged event is on the new primary (WAIT 1)');
    like($ngx->error_log,
         qr/sentinel: primary of mymaster is now \Q$new_addr\E/,
         'the new primary is logged') if $new_addr;
    my $m = $ngx->metrics;
    cmp_ok($m->{eventbridge_redis_topology_refreshes_total} // 0, '>=', 2,
           'metrics: topology refreshes counted');
    diag('metrics: ' . join ', ', map { "$_ $m->{$_}" }
         grep { /eventbridge_redis_(?!errors)/ } sort keys %$m);
}

# a frozen (SIGSTOP) Redis is always continued, or stopping it hangs
my @frozen;
END { kill 'CONT', @frozen if @frozen }

# --- 3. the replicas stall under load ------------------------------------------------
# WAIT 1 fails while no replica answers (503s are right then), and must
# not leave a queue of WAITs behind: Redis holds a connection's later
# commands while a WAIT blocks, so one WAIT per request at 40 requests/s
# with a 1 s WAIT timeout made the requests of the next minutes time out
# too (seen after a double failover, when the new primary's replica was
# still syncing). One WAIT out per connection, covering every transaction
# sent before it, answers them all within a WAIT timeout of the thaw.

{
    my $p = $s->primary;
    my @rep = $s->replicas;
    ok(wait_for(sub {
        my $info = eval { $p->cmd('INFO', 'replication') } // '';
        my $up = () = $info =~ /^slave\d+:.*state=online/mg;
        $up >= @rep;
    }, 30), 'the replicas of ' . $p->addr . ' are online: ' . scalar @rep);

    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $ngx->port . '/hook',
                                   rate => 40, seconds => 9, concurrency => 32,
                                   timeout => 5, body => sub { qq({"j":$_[0]}) });
    sleep 1.5;
    my $t_stop = time - $load->{t0};
    @frozen = map { $_->{pid} } @rep;
    kill 'STOP', @frozen;
    sleep 3;
    kill 'CONT', @frozen;
    @frozen = ();
    my $t_cont = time - $load->{t0};
    my $res = $load->wait;
    diag('replicas frozen 3 s under load: ' . EBTest::Load->summary($res));

    my (@before, @during, @after);
    for my $r (@{ $res->{requests} }) {
        my ($i, $t, $st) = @$r;
        push @{ $t < $t_stop ? \@before : $t < $t_cont + 1.5 ? \@during
                : \@after }, $st;
    }
    my $ok = sub { scalar grep { $_ >= 200 && $_ < 300 } @_ };
    diag(sprintf 'before the freeze %d/%d 2xx, frozen (+1.5 s) %d/%d, '
         . 'after %d/%d', $ok->(@before), scalar @before, $ok->(@during),
         scalar @during, $ok->(@after), scalar @after);
    cmp_ok(scalar(grep { $_ == 503 } @during), '>', 0,
           'replicas frozen: 503 (WAIT 1 not met)');
    cmp_ok(scalar @after, '>=', 100, 'requests sent after the thaw');
    is($ok->(@after), scalar @after,
       'from 1.5 s after the thaw on: 2xx only (no queue of WAITs left)');
    is($res->{other} + $res->{errors}, 0,
       'replicas frozen: every request answered, 2xx or 503');
}

unlike($ngx->error_log, qr/\Q$PW\E|\Q$SPW\E/, 'no password is ever logged');
$ngx->finish;

# --- 4. a master the sentinels do not know ---------------------------------------

{
    my $ngx2 = EBTest::Nginx->new(http => <<"EOF2");
    eventbridge_redis sentinel=nosuch $sentinels password=$PW
                      sentinel_password=$SPW;
    eventbridge_redis_timeout 2s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source sen.src bus=sen; }
    }
EOF2
    $ngx2->start;
    my @dt;
    for (1 .. 3) {
        my $t0 = time;
        my $r = post($ngx2);
        push @dt, time - $t0;
        is($r->{status}, 503, 'unknown master: 503');
        like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'unknown master: Retry-After');
        sleep 0.5;
    }
    cmp_ok($dt[-1], '<', 1, 'unknown master: refused at once');
    sleep 2;
    my @lines = grep { /\[error\].*master "nosuch"/ } split /\n/, $ngx2->error_log;
    is(scalar @lines, 1, 'unknown master: one [error] line')
        or diag(join "\n", @lines);
    like($lines[0] // '', qr/no sentinel named a primary for master "nosuch"/,
         'unknown master: the line says what is wrong');
    $ngx2->finish;
}

# --- 5. the sentinels refuse our password --------------------------------------

{
    my $ngx3 = EBTest::Nginx->new(http => <<"EOF2");
    eventbridge_redis sentinel=mymaster $sentinels password=$PW
                      sentinel_password=wrong-sen-pass;
    eventbridge_redis_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source sen.src bus=sen; }
    }
EOF2
    $ngx3->start;
    my $r;
    for (1 .. 3) { $r = post($ngx3); sleep 0.5 }
    is($r->{status}, 503, 'wrong sentinel password: 503');
    sleep 1.5;
    my $log = $ngx3->error_log;
    my @lines = grep { /\[error\]/ } split /\n/, $log;
    ok(scalar(grep { /sentinel|AUTH|WRONGPASS|invalid/i } @lines),
       'wrong sentinel password: said in the log')
        or diag(join "\n", @lines);
    cmp_ok(scalar @lines, '<=', 3, 'wrong sentinel password: logged once, '
           . 'not at every retry (' . scalar(@lines) . ' [error] lines)')
        or diag(join "\n", @lines);
    unlike($log, qr/wrong-sen-pass|\Q$PW\E/, 'wrong sentinel password: '
           . 'no password in the log');
    $ngx3->finish;
}

done_testing;
