#!/usr/bin/perl
# eventbridge_redis cluster SEEDS: the worker learns the slot map (CLUSTER
# SLOTS) and writes each bus's event and fan-out, one MULTI/EXEC, on the
# primary of the bus's slot. Under steady load: a primary killed (-9)
# fails over to its replica, every acknowledged event (eventbridge_redis_
# wait 1) is on the new primary; a bus's slot migrated to another primary
# (ASK, TRYAGAIN, then MOVED) loses nothing, leaves no request hanging,
# and later requests go straight to the new owner; with every node of a
# shard down the cluster is down: 503 + Retry-After, then recovery.
# Also the configuration errors nginx -t reports.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::RedisCluster;
use EBTest::Load;

# a frozen (SIGSTOP) node must always be continued, or the harness's
# cleanup (TERM + waitpid) would hang on it
my @frozen;
END { my $rc = $?; kill 'CONT', $_ for @frozen; $? = $rc; }

sub post {
    my ($ngx, $path, %o) = @_;
    return $ngx->request(method => 'POST', path => $path,
                         headers => ['Content-Type' => 'application/json'],
                         body => $o{body} // '{"n":1}', timeout => 10);
}


# event id => count, from a stream read through the cluster or one node

# acknowledged ids against a bus's events stream and its fan-out
sub stream_ids { EBTest::event_ids($_[0]->xrange($_[1])) }

sub check_bus {
    my ($c, $bus, $res, $what) = @_;
    my $ev = stream_ids($c, "eb:{$bus}:events");
    my $fo = stream_ids($c, "eb:{$bus}:target:out");
    my $lost = grep { !$ev->{$_} } @{ $res->{ids} };
    my $lost_fo = grep { !$fo->{$_} } @{ $res->{ids} };
    my $dups = grep { $_ > 1 } values %$ev;
    diag(sprintf '%s: acknowledged %d, found in Redis %d (fan-out %d), lost %d '
         . '(fan-out %d), duplicates %d, 503s %d', $what,
         scalar @{ $res->{ids} }, scalar(keys %$ev), scalar(keys %$fo), $lost,
         $lost_fo, $dups, $res->{s503});
    is($lost, 0, "$what: every acknowledged event is in eb:{$bus}:events");
    is($lost_fo, 0, "$what: and its fan-out in eb:{$bus}:target:out");
    is(scalar(keys %$ev), scalar(keys %$fo),
       "$what: events and fan-out hold the same events (never half applied)");
}

# --- nginx -t ------------------------------------------------------------------

sub conf_error {
    my ($what, $re, $http) = @_;
    my $ngx = EBTest::Nginx->new(http => $http . <<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;
        location /x { eventbridge_source s.src bus=x; }
    }
EOF
    my ($rc, $out) = $ngx->test_conf;
    isnt($rc, 0, "nginx -t fails: $what");
    like($out, $re, "nginx -t says why: $what");
}

conf_error('db= with cluster',
           qr/"eventbridge_redis" directive: "db=1": a Redis Cluster has only database 0/,
           "eventbridge_redis cluster 127.0.0.1:7000 db=1;\n");
conf_error('bad seed address',
           qr/"eventbridge_redis" directive: invalid redis address "127\.0\.0\.1:99999"/,
           "eventbridge_redis cluster 127.0.0.1:7000 127.0.0.1:99999;\n");
conf_error('cluster without seeds', qr/"eventbridge_redis" directive: no redis address/,
           "eventbridge_redis cluster password=x;\n");
conf_error('unix socket in a cluster', qr/unix sockets only for a single server/,
           "eventbridge_redis cluster unix:/tmp/r.sock;\n");
conf_error('several addresses without cluster',
           qr/several addresses: use "cluster" or "sentinel=MASTER"/,
           "eventbridge_redis 127.0.0.1:7000 127.0.0.1:7001;\n");
conf_error('user= without password=', qr/"user=" needs "password="/,
           "eventbridge_redis cluster 127.0.0.1:7000 user=u;\n");
conf_error('wait timeout >= redis timeout',
           qr/"eventbridge_redis_wait" directive: timeout 2000ms must be less than eventbridge_redis_timeout \(2000ms\)/,
           "eventbridge_redis cluster 127.0.0.1:7000;\neventbridge_redis_timeout 2s;\n"
           . "eventbridge_redis_wait 1 2s;\n");
conf_error('sentinel_password= without sentinel=',
           qr/invalid parameter "sentinel_password=x"/,
           "eventbridge_redis cluster 127.0.0.1:7000 sentinel_password=x;\n");
conf_error('empty sentinel master name', qr/empty sentinel master name/,
           "eventbridge_redis sentinel= 127.0.0.1:26379;\n");
conf_error('wait 0 replicas', qr/invalid number of replicas "0"/,
           "eventbridge_redis cluster 127.0.0.1:7000;\neventbridge_redis_wait 0;\n");

# --- the cluster, three buses on three primaries ------------------------------------

my $c = EBTest::RedisCluster->start(primaries => 3, replicas => 2,
                                    node_timeout => 1000);
my @bus = $c->bus_names(3);
my %slot = map { $_ => $c->slot_of("eb:{$_}:events") } @bus;
note("buses @bus on slots @slot{@bus}");

my $ngx = EBTest::Nginx->new(workers => 2, http => <<"EOF");
    eventbridge_redis cluster ${\ join ' ', ($c->seeds)[0, 1] };
    eventbridge_redis_timeout 3s;
    eventbridge_redis_wait 1 1s;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /$bus[0] { eventbridge_source c.src bus=$bus[0]; }
        location /$bus[1] { eventbridge_source c.src bus=$bus[1]; }
        location /$bus[2] { eventbridge_source c.src bus=$bus[2]; }
        location /pe { eventbridge_put_events bus=$bus[2]; }
        location /status { eventbridge_status; }
    }
EOF
my %rules = map { ("r$_" => { pattern => { source => [ $_ ? '/pe' : 'c.src' ] },
                              targets => [{ target => 'out' }] }) } 0, 1;
write_file($ngx->dir . '/buses.json', JSON::PP->new->encode({
    targets => { out => { type => 'http', url => 'https://out.example.com/' } },
    buses => { map { $_ => { rules => \%rules } } @bus },
}));
$ngx->start;

{
    my %owner;
    for my $b (@bus) {
        my $r;
        wait_for(sub { $r = post($ngx, "/$b"); $r->{status} == 200 }, 10);
        is($r->{status}, 200, "bus $b: 200");
        my $id = $r->{json}{eventId} // 'none';
        my $p = $c->primary_of_slot($slot{$b});
        $owner{ $p->port }++;
        ok(stream_ids($p, "eb:{$b}:events")->{$id},
           "bus $b: the event is on its slot's primary " . $p->addr);
        ok(stream_ids($p, "eb:{$b}:target:out")->{$id},
           "bus $b: and its fan-out");
    }
    is(scalar keys %owner, 3, 'three buses, three primaries');

    # PutEvents takes the same path: a batch, one MULTI/EXEC on the primary
    my $batch = '[' . join(',', map {
        qq({"specversion":"1.0","id":"pe-$_","source":"/pe","type":"t.pe"})
    } 1 .. 3) . ']';
    my $r = $ngx->request(method => 'POST', path => '/pe', body => $batch,
                          headers => ['Content-Type' =>
                                      'application/cloudevents-batch+json']);
    is($r->{status}, 200, 'PutEvents batch: 200');
    my $p = $c->primary_of_slot($slot{ $bus[2] });
    my $ev = stream_ids($p, "eb:{$bus[2]}:events");
    my $fo = stream_ids($p, "eb:{$bus[2]}:target:out");
    is(scalar(grep { $ev->{"pe-$_"} && $fo->{"pe-$_"} } 1 .. 3), 3,
       'PutEvents batch: the events and their fan-out are on the primary');
    like($ngx->error_log, qr/redis cluster: slot map: 3 primaries/,
         'the slot map is logged');
}

# --- kill -9 the primary of a bus under load ----------------------------------------

{
    my $b = $bus[0];
    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $ngx->port . "/$b",
                                   rate => 40, seconds => 10, concurrency => 32,
                                   timeout => 6, body => sub { qq({"i":$_[0]}) });
    sleep 2;
    my $tk = time - $load->{t0};
    my $old = $c->kill9_primary_of_slot($slot{$b});
    my $new = $c->wait_failover($slot{$b}, $old, 25);
    ok($new, 'failover: a replica took over' . ($new ? ' (' . $new->addr . ')' : ''));
    my $res = $load->wait;
    diag('primary killed under load: ' . EBTest::Load->summary($res));

    # requests sent after the kill: the first to get 2xx (by start), the
    # first 2xx answer (by end), failures once they succeed again
    my ($first_ok, $first_answer, $late_bad) = (undef, undef, 0);
    for my $r (@{ $res->{requests} }) {
        my ($i, $t, $st, $ms) = @$r;
        next if $t < $tk;
        if ($st >= 200 && $st < 300) {
            $first_ok //= $t;
            my $end = $t + $ms / 1000;
            $first_answer = $end if !defined $first_answer || $end < $first_answer;
        }
        elsif (defined $first_ok && $t > $first_ok + 0.5) { $late_bad++ }
    }
    ok(defined $first_ok, 'failover: 2xx again without a reload');
    diag(sprintf 'failover: first 2xx answer %.2f s after the kill; slowest '
         . 'answer %.2f s (timeout 3 s)', ($first_answer // 99) - $tk,
         $res->{max} / 1000);
    is($late_bad, 0, 'failover: 2xx only once recovered');
    is($res->{other} + $res->{errors}, 0, 'failover: every request answered, 2xx or 503');
    check_bus($c, $b, $res, 'failover');
}

# --- migrate a bus's slot to another primary under load ---------------------------------

{
    my $b = $bus[1];
    my $to = $c->primary_of_slot($slot{ $bus[2] });
    my $m0 = $ngx->metrics;
    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $ngx->port . "/$b",
                                   rate => 40, seconds => 8, concurrency => 32,
                                   timeout => 6, body => sub { qq({"i":$_[0]}) });
    sleep 1;
    my $moved = $c->migrate_slot($slot{$b}, $to, pause => 0.7, keys_per_step => 1);
    my $res = $load->wait;
    diag("migration of slot $slot{$b} ($moved keys) under load: "
         . EBTest::Load->summary($res));
    is($c->primary_of_slot($slot{$b})->port, $to->port, 'migration: the slot moved');
    is($res->{other} + $res->{errors}, 0, 'migration: every request answered');
    cmp_ok($res->{max}, '<', 3100, 'migration: none waited beyond the timeout');
    is($res->{s503}, 0, 'migration: no 503');
    check_bus($c, $b, $res, 'migration');

    my $m1 = $ngx->metrics;
    my %d = map { $_ => ($m1->{$_} // 0) - ($m0->{$_} // 0) }
        'eventbridge_redis_redirections_total{kind="moved"}',
        'eventbridge_redis_redirections_total{kind="ask"}',
        'eventbridge_redis_retries_total';
    diag('migration: ' . join ', ', map { "$_ +$d{$_}" } sort keys %d);
    cmp_ok($d{'eventbridge_redis_redirections_total{kind="moved"}'}
           + $d{'eventbridge_redis_redirections_total{kind="ask"}'}, '>=', 1,
           'migration: redirections followed');

    # the map is refreshed: later requests go to the new owner at once
    sleep 0.5;
    $m0 = $ngx->metrics;
    my $ok = 0;
    for (1 .. 20) { $ok++ if post($ngx, "/$b")->{status} == 200 }
    $m1 = $ngx->metrics;
    is($ok, 20, 'after the migration: 200s');
    # a worker that sent nothing after the slot's last step learns the
    # new owner from one MOVED; none is redirected twice, none is ASKed
    cmp_ok(($m1->{'eventbridge_redis_redirections_total{kind="moved"}'} // 0)
           - ($m0->{'eventbridge_redis_redirections_total{kind="moved"}'} // 0),
           '<=', 2, 'after the migration: at most one MOVED per worker');
    is(($m1->{'eventbridge_redis_redirections_total{kind="ask"}'} // 0)
       - ($m0->{'eventbridge_redis_redirections_total{kind="ask"}'} // 0), 0,
       'after the migration: no ASK');
}

# --- a frozen primary: the watchdog drops its connection -------------------------------

{
    my $b = $bus[2];
    my $old = $c->primary_of_slot($slot{$b});
    my ($judge) = grep { $_->{pid} && $_ != $old } $c->primaries;
    my $m0 = $ngx->metrics;
    my $load = EBTest::Load->start(url => 'http://127.0.0.1:' . $ngx->port . "/$b",
                                   rate => 40, seconds => 8, concurrency => 32,
                                   timeout => 6, body => sub { qq({"i":$_[0]}) });
    sleep 1.5;
    my $tf = time - $load->{t0};
    kill 'STOP', $old->{pid};
    push @frozen, $old->{pid};
    # asked of another primary: the frozen one would not answer
    my $moved = wait_for(sub {
        my $sl = EBTest::RedisCluster::_slots($judge) or return 0;
        my $p = EBTest::RedisCluster::_owner_port($sl, $slot{$b});
        defined $p && $p != $old->port;
    }, 20);
    ok($moved, 'frozen primary: a replica took over');
    my $res = $load->wait;
    kill 'CONT', $old->{pid};
    @frozen = ();
    diag('primary frozen under load: ' . EBTest::Load->summary($res));

    my ($first_answer, $late_bad, $first_ok) = (undef, 0, undef);
    for my $r (@{ $res->{requests} }) {
        my ($i, $t, $st, $ms) = @$r;
        next if $t < $tf;
        if ($st >= 200 && $st < 300) {
            $first_ok //= $t;
            my $end = $t + $ms / 1000;
            $first_answer = $end if !defined $first_answer || $end < $first_answer;
        }
        elsif (defined $first_ok && $t > $first_ok + 0.5) { $late_bad++ }
    }
    diag(sprintf 'frozen primary: first 2xx answer %.2f s after the freeze',
         ($first_answer // 99) - $tf);
    ok(defined $first_ok, 'frozen primary: 2xx again without a reload');
    is($late_bad, 0, 'frozen primary: 2xx only once recovered');
    is($res->{other} + $res->{errors}, 0, 'frozen primary: every request answered');
    my $m1 = $ngx->metrics;
    cmp_ok(($m1->{eventbridge_redis_watchdog_drops_total} // 0)
           - ($m0->{eventbridge_redis_watchdog_drops_total} // 0), '>=', 1,
           'frozen primary: the watchdog dropped its connection');
    ok($c->wait_ok(30), 'frozen primary continued: the cluster is ok');
    check_bus($c, $b, $res, 'frozen primary');
}

# --- every node of a shard down: the cluster is down, then back ---------------------------

{
    my $b = $bus[0];
    my @dead = grep { !$_->{pid} } $c->nodes;
    my @shard;
    # the slot's primary and every replica that follows it (ROLE); a
    # replica that migrated there meanwhile would take over: then it goes
    # too, until no live node serves the slot
    for my $round (1 .. 3) {
        my $p = $c->primary_of_slot($slot{$b});
        last unless $p && $p->{pid};
        my @kill = ($p, grep {
            my $r = $_ != $p ? eval { $_->cmd('ROLE') } : undef;
            ref $r eq 'ARRAY' && $r->[0] eq 'slave' && $r->[2] == $p->port
        } grep { $_->{pid} } $c->nodes);
        $_->kill9 for @kill;
        push @shard, @kill;
        note('killed ' . join ' ', map { $_->addr } @kill);
        wait_for(sub {
            for my $n (grep { $_->{pid} } $c->nodes) {
                my $i = eval { $n->cmd('CLUSTER', 'INFO') } // '';
                return 0 unless $i =~ /cluster_state:fail/;
            }
            return 1;
        }, 20);
        sleep 3;
    }
    # every live node must see it: until then a primary still takes writes
    ok(!grep({ (eval { $_->cmd('CLUSTER', 'INFO') } // '') !~ /cluster_state:fail/ }
             grep { $_->{pid} } $c->nodes),
       'every live node says cluster_state:fail');

    for my $x ($b, $bus[2]) {
        my $t0 = time;
        my $r = post($ngx, "/$x");
        my $dt = time - $t0;
        is($r->{status}, 503, "cluster down, bus $x: 503")
            or diag("got $r->{status} after ${\ sprintf '%.2f', $dt} s: "
                    . ($r->{body} // $r->{error} // ''));
        like($r->{headers}{'retry-after'} // '', qr/^\d+$/, "cluster down, bus $x: Retry-After");
        is($r->{json}{errorCode}, 'ServiceUnavailable', "cluster down, bus $x: JSON error");
        cmp_ok($dt, '<', 4, "cluster down, bus $x: within the timeout");
    }

    $_->restart for @shard, @dead;
    ok($c->wait_ok(40), 'the cluster is ok again');
    for my $x (@bus) {
        ok(wait_for(sub { post($ngx, "/$x")->{status} == 200 }, 15),
           "cluster back, bus $x: 200 again");
    }
}

# a reload: the new workers learn the map again, the old ones let go
{
    my @old = $ngx->worker_pids;
    $ngx->reload;
    ok(wait_for(sub {
        my %now = map { $_ => 1 } $ngx->worker_pids;
        !grep { $now{$_} } @old;
    }, 15), 'reload: the old workers are gone');
    for my $x (@bus) {
        ok(wait_for(sub { post($ngx, "/$x")->{status} == 200 }, 10),
           "after the reload, bus $x: 200");
    }
}

my $m = $ngx->metrics;
diag('metrics: ' . join ', ', map { "$_ $m->{$_}" }
     grep { /eventbridge_redis_(?!errors)|redis_errors.*[1-9]/ } sort keys %$m);

$ngx->finish;

# --- seeds that do not answer: 503 at once, one clear line ------------------------------

{
    my @none = map { '127.0.0.1:' . EBTest::free_port() } 1 .. 2;
    my $ngx2 = EBTest::Nginx->new(http => <<"EOF2");
    eventbridge_redis cluster @none;
    eventbridge_redis_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /x { eventbridge_source s.src bus=x; }
    }
EOF2
    $ngx2->start;
    my ($r, $dt);
    for (1 .. 4) {
        my $t0 = time;
        $r = post($ngx2, '/x');
        $dt = time - $t0;
        sleep 0.5;
    }
    is($r->{status}, 503, 'unreachable seeds: 503');
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'unreachable seeds: Retry-After');
    is($r->{json}{errorCode}, 'ServiceUnavailable', 'unreachable seeds: JSON error');
    cmp_ok($dt, '<', 1.5, 'unreachable seeds: answered within the timeout');
    my @lines = grep { /\[error\]/ } split /\n/, $ngx2->error_log;
    is(scalar(grep { /no node answered CLUSTER SLOTS/ } @lines), 1,
       'unreachable seeds: one line says so, not one per round')
        or diag(join "\n", @lines);
    $ngx2->finish;
}

done_testing;
