#!/usr/bin/perl
# The web console's feed, which ebd keeps in Redis (src/dispatcher/
# ebd_index.c): the event index eb:{BUS}:idx:H (e: and t: tokens that
# resolve to the right entries), the counters eb:{BUS}:stats:m:M and
# eb:{BUS}:stats:h:H (accepted, matched, delivered:T, retried:T,
# failed:T) equal to what happened, their TTLs, two ebd processes
# indexing one bus without counting an event twice, and `ebd trace
# --event` through the index (among many events, every attempt, an event
# not indexed yet). Real nginx, Redis, ebd and an HTTP peer.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::Peer;

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;

my $WEEK_H = 7 * 86400 + 3600;          # the index's TTL without retention

my $dir = tempdir('eb-065-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = EBTest::Redis->start;
my $peer = EBTest::Peer->start(control => {
    paths => { '/ok' => 200, '/flaky' => { seq => [ 503, 503, 200 ] },
               '/bad' => 500, '/many' => 503 },
});

my $fast = { strategy => 'backoff', attempts => 5, interval => '20ms',
             max_interval => '40ms' };
my $cfg = {
    targets => {
        ok    => { type => 'http', url => $peer->url('/ok'), retry => $fast },
        flaky => { type => 'http', url => $peer->url('/flaky'), retry => $fast },
        bad   => { type => 'http', url => $peer->url('/bad'),
                   retry => { %$fast, attempts => 2 } },
        many  => { type => 'http', url => $peer->url('/many'),
                   retry => { strategy => 'backoff', attempts => 104,
                              interval => '1ms', max_interval => '2ms' } },
    },
    buses => {
        feed => { rules => {
            'r-ok'    => { pattern => { data => { body => { kind => [ 'ok', 'flaky' ] } } },
                           targets => [ { target => 'ok' } ] },
            'r-flaky' => { pattern => { data => { body => { kind => [ 'flaky' ] } } },
                           targets => [ { target => 'flaky' } ] },
            'r-bad'   => { pattern => { data => { body => { kind => [ 'bad' ] } } },
                           targets => [ { target => 'bad' } ] },
            'r-many'  => { pattern => { data => { body => { kind => [ 'many' ] } } },
                           targets => [ { target => 'many' } ] },
        } },
    },
};
my $cfg_path = "$dir/buses.json";
write_file($cfg_path, $JSON->encode($cfg));

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /feed { eventbridge_source feed.src bus=feed; }
    }
EOF
write_file($ngx->dir . '/buses.json', $JSON->encode($cfg));
$ngx->start;

sub post {
    my ($kind, $n) = @_;
    my $r = $ngx->request(method => 'POST', path => '/feed',
                          body => $JSON->encode({ kind => $kind, n => $n }),
                          headers => [ 'Content-Type' => 'application/json' ]);
    die "POST: $r->{status}" unless $r->{status} == 200;
    return EBTest::json_decode($r->{body})->{eventId};
}

sub ebd_run {
    my (@args) = @_;
    my $cmd = join ' ', map { "'$_'" } $EBD, '-r', $redis->addr, @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

sub keys_like { [ sort @{ $redis->cmd('KEYS', $_[0]) // [] } ] }

sub hash { my %h = @{ $redis->cmd('HGETALL', $_[0]) // [] }; \%h }

sub ms_of { ($_[0] =~ /^(\d+)/)[0] }

# every stats field summed over the buckets of one kind (m or h)
sub stats_sum {
    my ($kind) = @_;
    my %sum;
    for my $k (grep { !/:idx:/ } @{ keys_like("eb:{feed}:stats:$kind:*") }) {
        my $h = hash($k);
        # counters only: backlog:T and dlq:T are sampled gauges
        $sum{$_} += $h->{$_} for grep { !/^(backlog|dlq):/ } keys %$h;
    }
    return \%sum;
}

my $cursor_key = 'eb:{feed}:idx:cursor';

sub last_event_id {
    my $r = $redis->cmd('XREVRANGE', 'eb:{feed}:events', '+', '-', 'COUNT', 1);
    return ref $r eq 'ARRAY' && @$r ? $r->[0][0] : '';
}

sub caught_up {
    my $last = last_event_id();
    return wait_for(sub { ($redis->cmd('GET', $cursor_key) // '') eq $last }, 10);
}

# two ebd processes: both index the bus (worker 0 of each) and both
# deliver (consumers c1 and c2 of the groups)
my $t0 = time;
my @ebd = map { EBTest::Ebd->start(config => $cfg_path, redis => $redis,
                                   name => $_, level => 'debug') } qw(c1 c2);
like($ebd[$_]->log, qr/ebd: ready/, "ebd $_ ready") for 0, 1;

# --- 1. events, deliveries, retries, a dead letter ---------------------------

my (%ids, @all);
for my $i (1 .. 20) { push @{ $ids{ok} }, post('ok', $i) }
push @{ $ids{flaky} }, post('flaky', 1);
push @{ $ids{bad} }, post('bad', 1);
for my $i (1 .. 5) { push @{ $ids{none} }, post('none', $i) }
@all = map { @{ $ids{$_} } } qw(ok flaky bad none);

ok(wait_for(sub { $redis->xlen('eb:{feed}:dlq:bad') == 1
                  && $redis->xlen('eb:{feed}:trace') == 21 + 3 + 3 }, 20),
   'deliveries done: 21 to ok, 3 attempts at flaky, 3 at bad then a dead letter')
    or diag 'trace: ' . $redis->xlen('eb:{feed}:trace');
ok(caught_up(), 'the indexer\'s cursor reached the last events entry');

# --- 2. the index --------------------------------------------------------------

my $events = $redis->xrange('eb:{feed}:events');
my $trace = $redis->xrange('eb:{feed}:trace');
my (%entry_of, %attempts_of);
for my $e (@$events) {
    my $id = EBTest::json_decode($e->[1]{event})->{id};
    $entry_of{$id} = $e->[0];
}
push @{ $attempts_of{ $_->[1]{event} } }, $_->[0] for @$trace;
is(scalar @$events, 27, '27 events entries');

my (%tokens, %bucket_of, $dup);
for my $k (grep { !/cursor$/ } @{ keys_like('eb:{feed}:idx:*') }) {
    my ($h) = $k =~ /:idx:(\d+)$/;
    my $v = hash($k);
    for my $id (keys %$v) {
        my @t = split / /, $v->{$id};
        my %seen;
        $dup++ if grep { $seen{$_}++ } @t;
        push @{ $tokens{$id} }, @t;
        $bucket_of{"$id $_"} = $h for @t;
    }
}
ok(!$dup, 'no token twice within a value');
is_deeply([ sort keys %tokens ], [ sort @all ], 'every event is indexed, nothing else');

my ($bad_tokens, $bad_bucket) = (0, 0);
for my $id (@all) {
    my @want = ("e:$entry_of{$id}", map { "t:$_" } @{ $attempts_of{$id} // [] });
    my @got = @{ $tokens{$id} };
    unless (is_deeply([ sort @got ], [ sort @want ], "index of $id: e: and t: tokens")) {
        $bad_tokens++;
    }
    # every token is in the bucket of its target/events entry's hour
    my $h = int(ms_of($entry_of{$id}) / 3600000);
    $bad_bucket++ if grep { $bucket_of{"$id $_"} != $h
                            && $bucket_of{"$id $_"} != $h + 1 } @got;
}
is($bad_bucket, 0, 'tokens are in the hour bucket of the event\'s entry');

# the tokens resolve to the entries they name
{
    my ($ok_e, $ok_t) = (0, 0);
    for my $id (@all) {
        for my $t (@{ $tokens{$id} }) {
            my ($kind, $eid) = $t =~ /^([et]):(.+)$/;
            my $stream = $kind eq 'e' ? 'eb:{feed}:events' : 'eb:{feed}:trace';
            my $r = $redis->cmd('XRANGE', $stream, $eid, $eid);
            next unless ref $r eq 'ARRAY' && @$r == 1;
            my %f = @{ $r->[0][1] };
            if ($kind eq 'e') {
                $ok_e++ if EBTest::json_decode($f{event})->{id} eq $id;
            } else {
                $ok_t++ if $f{event} eq $id;
            }
        }
    }
    is($ok_e, 27, 'every e: token is the event\'s entry in eb:{feed}:events');
    is($ok_t, 27, 'every t: token is one of the event\'s attempts in eb:{feed}:trace');
}

# --- 3. the counters ------------------------------------------------------------

my $want = { accepted => 27, matched => 22,
             'delivered:ok' => 21, 'delivered:flaky' => 1,
             'retried:flaky' => 2, 'retried:bad' => 2, 'failed:bad' => 1 };
is_deeply(stats_sum('m'), $want, 'minute buckets: the real counts, once each');
is_deeply(stats_sum('h'), $want, 'hour buckets: the same');

# accepted and matched by the events entries' own minute and hour
{
    my (%m, %h);
    for my $e (@$events) {
        my $ms = ms_of($e->[0]);
        my $matched = $e->[1]{rules} ne '' ? 1 : 0;
        $m{ int($ms / 60000) }{accepted}++;
        $m{ int($ms / 60000) }{matched} += $matched;
        $h{ int($ms / 3600000) }{accepted}++;
        $h{ int($ms / 3600000) }{matched} += $matched;
    }
    my $ok = 1;
    for my $b (keys %m) {
        my $got = hash("eb:{feed}:stats:m:$b");
        $ok &&= ($got->{accepted} // 0) == $m{$b}{accepted}
                && ($got->{matched} // 0) == $m{$b}{matched};
    }
    for my $b (keys %h) {
        my $got = hash("eb:{feed}:stats:h:$b");
        $ok &&= ($got->{accepted} // 0) == $h{$b}{accepted}
                && ($got->{matched} // 0) == $h{$b}{matched};
    }
    ok($ok, 'accepted and matched per minute and per hour bucket of the entries\' ids');

    # attempts are counted when they end: in the buckets of this run
    my ($lo, $hi) = (int($t0 / 60) , int(time / 60));
    my @out = grep { my ($b) = /:m:(\d+)$/; $b < $lo || $b > $hi }
              @{ keys_like('eb:{feed}:stats:m:*') };
    is_deeply(\@out, [], 'attempt counters in the minutes of the run');
}

# the backlog and dead letters, sampled every 15 s into the same buckets
{
    my $dlq = $redis->xlen('eb:{feed}:dlq:bad');
    ok(wait_for(sub {
        my $h = hash("eb:{feed}:stats:m:" . int(time / 60));
        defined $h->{'dlq:bad'} && $h->{'dlq:bad'} == $dlq
            && defined $h->{'backlog:ok'} && $h->{'backlog:ok'} == 0 }, 20),
       "the current minute's sample: dlq:bad = $dlq (XLEN), backlog:ok = 0")
        or diag explain hash("eb:{feed}:stats:m:" . int(time / 60));
    my $hh = hash("eb:{feed}:stats:h:" . int(time / 3600));
    is($hh->{'dlq:bad'}, $dlq, 'and the hour\'s');
}

# --- 4. TTLs --------------------------------------------------------------------

{
    my @idx = grep { !/cursor$/ } @{ keys_like('eb:{feed}:idx:*') };
    my @bad = grep { my $t = $redis->cmd('TTL', $_); $t > $WEEK_H || $t < $WEEK_H - 120 } @idx;
    ok(@idx && !@bad, 'index buckets expire in a week and an hour (no retention)')
        or diag join ' ', map { "$_=" . $redis->cmd('TTL', $_) } @idx;
    @bad = grep { my $t = $redis->cmd('TTL', $_); $t > 7500 || $t < 7300 }
           @{ keys_like('eb:{feed}:stats:m:*') };
    ok(!@bad, 'minute buckets expire in 2 h 5 min');
    @bad = grep { my $t = $redis->cmd('TTL', $_); $t > 691200 || $t < 691000 }
           @{ keys_like('eb:{feed}:stats:h:*') };
    ok(!@bad, 'hour buckets expire in 8 days');
    is($redis->cmd('TTL', $cursor_key), -1, 'the cursor does not expire');
}

# --- 5. ebd trace --event through the index ---------------------------------------

{
    my ($rc, $out) = ebd_run('trace', '--bus', 'feed', '--event', $ids{flaky}[0]);
    is($rc, 0, 'trace of the flaky event exits 0') or diag $out;
    my @lines = split /\n/, $out;
    is(scalar @lines, 5, 'accepted, 1 delivery to ok, 3 attempts at flaky') or diag $out;
    like($lines[0], qr/accepted\s+source feed\.src .*rules \S*r-flaky\S*  entry \Q$entry_of{$ids{flaky}[0]}\E/,
         'the acceptance first, with its rules and entry');
    my @flaky = grep { /target flaky/ } @lines;
    like($flaky[0], qr/retry\s+target flaky\s+attempt 1  status 503/, 'attempt 1: retry (503)');
    like($flaky[1], qr/retry\s+target flaky\s+attempt 2  status 503/, 'attempt 2: retry (503)');
    like($flaky[2], qr/delivered\s+target flaky\s+attempt 3  status 200/, 'attempt 3: delivered');

    ($rc, $out) = ebd_run('trace', '--bus', 'feed', '--event', $ids{bad}[0]);
    like($out, qr/accepted .*\n.*retry\s+target bad\s+attempt 1 .*\n.*retry\s+target bad\s+attempt 2 .*\n.*dead-lettered\s+target bad\s+attempt 3  status 500/,
         'the dead-lettered event: its three attempts in order');

    ($rc, $out) = ebd_run('trace', '--bus', 'feed', '--event', $ids{none}[0]);
    like($out, qr/accepted .*rules \(none matched\).*\n\(no delivery attempt recorded yet\)\n\z/,
         'an event that matched nothing');
    ($rc, $out) = ebd_run('trace', '--bus', 'feed', '--event', 'no-such-event');
    is($rc, 1, 'an unknown event exits 1');
}

# many events: the one asked for is found, no scan (the index's answer)
{
    my @many;
    push @many, post('ok', $_) for 1 .. 400;
    ok(wait_for(sub { $redis->xlen('eb:{feed}:trace') == 27 + 400 }, 30), '400 more delivered');
    ok(caught_up(), 'and indexed');
    my $mid = $many[200];
    my ($rc, $out) = ebd_run('trace', '--bus', 'feed', '--event', $mid);
    like($out, qr/\A\S+  accepted .*\n\S+  delivered\s+target ok\s+attempt 1  status 200 .*event \Q$mid\E\s+rule r-ok(?:  traceparent \S+)?\n\z/,
         'trace --event finds one among 427');
    my $v = $redis->cmd('HGET', 'eb:{feed}:idx:' . int(ms_of(last_event_id()) / 3600000), $many[-1]);
    like($v // '', qr/\Ae:\d+-\d+ t:\d+-\d+\z/, 'a value: its e: token, then its t: token');
    my $s = stats_sum('h');
    is($s->{accepted}, 427, 'accepted: 427');
    is($s->{'delivered:ok'}, 421, 'delivered:ok: 421');
}

# --- 5b. more attempts than a value keeps -----------------------------------------

{
    my $before = stats_sum('h');
    my $id = post('many', 1);
    ok(wait_for(sub { $redis->xlen('eb:{feed}:dlq:many') == 1 }, 30),
       'an event tried 105 times, then dead-lettered');
    ok(caught_up(), 'indexed');
    my $h = int(ms_of(last_event_id()) / 3600000);
    my $v = $redis->cmd('HGET', "eb:{feed}:idx:$h", $id) // '';
    my @t = grep { /^t:/ } split / /, $v;
    is(scalar @t, 100, 'its value keeps 100 t: tokens, no more');
    like($v, qr/(?:^| )e:\d+-\d+(?: |$)/, 'and its e: token');
    my @att = grep { $_->[1]{event} eq $id } @{ $redis->xrange('eb:{feed}:trace') };
    is(scalar @att, 105, 'the trace has all 105 attempts');
    is_deeply([ map { s/^t://r } @t ], [ map { $_->[0] } @att[0 .. 99] ],
              'the tokens are the first 100, in order');
    my ($rc, $out) = ebd_run('trace', '--bus', 'feed', '--event', $id);
    my @lines = split /\n/, $out;
    is(scalar(grep { /target many/ } @lines), 100, 'trace --event: 100 attempts');
    like($lines[-1], qr/^\(the index keeps 100 attempts of an event; later ones: ebd trace --bus feed --since TIME\)$/,
         'and says that there may be more');
    my $after = stats_sum('h');
    is(($after->{'retried:many'} // 0) - ($before->{'retried:many'} // 0), 104, 'retried:many 104');
    is(($after->{'failed:many'} // 0) - ($before->{'failed:many'} // 0), 1, 'failed:many 1');
}

# --- 6. two indexers racing, from the same cursor --------------------------------

{
    $_->stop for @ebd;
    my $before = stats_sum('m');
    my @quiet;
    push @quiet, post('none', $_) for 1 .. 1000;

    # not indexed yet: found in the events past the cursor
    my ($rc, $out) = ebd_run('trace', '--bus', 'feed', '--event', $quiet[-1]);
    like($out, qr/accepted .*rules \(none matched\)/, 'trace: an event not indexed yet, from the stream\'s tail');

    # both at once, with Redis holding writes back for 2 s: both read
    # the same cursor and the same page, both send the page's script
    # while Redis waits; one applies it, the other finds the cursor moved
    is($redis->cmd('CLIENT', 'PAUSE', 2000, 'WRITE'), 'OK', 'Redis holds writes for 2 s');
    @ebd = map { EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => $_,
                                    level => 'debug', ready_mark => '') } qw(c1 c2);
    ok(wait_for(sub { !grep { $_->log !~ /ebd: ready/ } @ebd }, 15), 'both ebds ready');
    ok(caught_up(), 'both indexed the 1000');
    my $after = stats_sum('m');
    is($after->{accepted} - $before->{accepted}, 1000, 'accepted grew by 1000, not more');
    is($after->{matched}, $before->{matched}, 'matched did not grow');
    my $n = grep { defined } map { $redis->cmd('HGET', "eb:{feed}:idx:$_", $quiet[500]) }
            map { int(time / 3600) - $_ } 0 .. 1;
    is($n, 1, 'an event of the 1000 is in the index');
    my $moved = grep { $_->log =~ /index cursor moved by another ebd/ } @ebd;
    ok($moved >= 1, 'an indexer lost the compare-and-set and went on from the cursor')
        or diag join "\n", map { $_->log } @ebd;
}

$_->stop for @ebd;
for my $e (@ebd) {
    my @p = $e->log_problems;
    ok(!@p, 'no sanitizer report from ebd') or diag join "\n", @p;
}
$ngx->finish;
done_testing;
