#!/usr/bin/perl
# "Replay this window" from the console, with a real nginx (the
# console's API), Redis, ebd and an HTTP peer:
#   1. POST api/replay with a CSRF token writes a request (202); ebd's
#      worker 0 claims and runs it: the peer gets exactly the window's
#      selected events once, in order, marked ce-replay; GET api/replays
#      says done with the counts; the same POST again is 200 and enqueues
#      nothing; another window under the name is 409; ebd replay
#      --status lists it;
#   2. CSRF missing or forged: 403; bad parameters: 400 naming the
#      parameter; unknown bus / rule / target: 404; nothing written;
#   3. kill -9 of the ebd running a large request mid-way, another ebd
#      started: it resumes once the lease is over, none twice, none
#      skipped; SIGTERM hands a running replay back ("requested").
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file slurp);
use EBTest::Peer;

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;

my $dir = tempdir('eb-047-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = EBTest::Redis->start;
my $peer = EBTest::Peer->start;

my $CFG = {
    targets => {
        # one at a time: the peer sees them in order
        ce => { type => 'cloudevents', url => $peer->url('/ce'),
                fault_tolerance => 'NONE' },
        rx => { type => 'redis', address => $redis->addr, stream => 'out:x' },
        rr => { type => 'redis', address => $redis->addr, stream => 'out:r' },
    },
    buses => {
        hr => { rules => {
            new   => { pattern => { type => ['t.new'] },
                       targets => [ { target => 'ce' } ] },
            other => { pattern => { type => ['t.other'] },
                       targets => [ { target => 'rx' } ] },
            off   => { pattern => { type => ['t.new'] }, enabled => JSON::PP::false,
                       targets => [ { target => 'rx' } ] },
        } },
        big => { rules => {
            all => { pattern => { source => ['my.src'] },
                     targets => [ { target => 'rr' } ] },
        } },
    },
};

my $cfg_path = "$dir/buses.json";
write_file($cfg_path, $JSON->encode($CFG));

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /console/ {
            eventbridge_console root=%%DIR%%/console;
            allow 127.0.0.1;
            deny all;
        }
    }
EOF
write_file($ngx->dir . '/buses.json', $JSON->encode($CFG));
mkdir $ngx->dir . '/console';
write_file($ngx->dir . '/console/index.html', "<!DOCTYPE html><title>c</title>\n");
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'ebd-one');
ok($ebd->alive, 'ebd runs');

sub ms_of { ($_[0] =~ /^(\d+)-/)[0] }

sub api {
    my $r = $ngx->request(method => 'GET', path => "/console/api/$_[0]");
    $r->{json} = eval { $JSON->decode($r->{body}) } if ($r->{body} // '') =~ /^[{\[]/;
    return $r;
}

my $TOKEN = api('csrf')->{json}{token};
ok($TOKEN, 'csrf: a token');

sub post_replay {
    my ($body, @h) = @_;
    @h = ('X-EB-CSRF' => $TOKEN) unless @h;
    @h = () if $h[0] eq 'none';
    my $r = $ngx->request(method => 'POST', path => '/console/api/replay',
                          headers => ['Content-Type' => 'application/json', @h],
                          body => ref $body ? $JSON->encode($body) : $body);
    $r->{json} = eval { $JSON->decode($r->{body}) } if ($r->{body} // '') =~ /^\{/;
    return $r;
}

sub is_err {
    my ($r, $status, $what, $re) = @_;
    is($r->{status}, $status, "$what: $status");
    like($r->{json}{errorMessage} // '', $re, "$what: names it") if $re;
}

# how many entries were ever added to a stream (ebd trims what it
# acknowledged, and makes the stream for its group)
sub added {
    my ($key) = @_;
    my $r = $redis->cmd('XINFO', 'STREAM', $key);
    return 0 unless ref $r eq 'ARRAY';
    my %h = @$r;
    return $h{'entries-added'};
}

sub ev_json {
    my ($id, $type) = @_;
    return qq({"specversion":"1.0","id":"$id","source":"my.src","type":"$type",)
         . qq("time":"2026-12-01T10:00:00Z","data":{"n":1}});
}

# events straight into a bus's events stream (what nginx writes while
# no rule sent them anywhere): their ids
sub fill {
    my ($bus, $n, $mk) = @_;
    my @ids;
    for (my $i = 1; $i <= $n; $i += 5000) {
        my $hi = $i + 4999 > $n ? $n : $i + 4999;
        push @ids, @{ $redis->pipeline(map { [ 'XADD', "eb:{$bus}:events", '*',
                                               'event', $mk->($_) ] } $i .. $hi) };
    }
    return @ids;
}

# --- 1. a replay from the console ----------------------------------------------

# before, in and after the window: t.new and t.other alternating
my @before = fill('hr', 4, sub { ev_json("pre-$_[0]", 't.new') });
sleep 0.01;
# one at a time: a window of several milliseconds
my @in = map { my $k = $_; sleep 0.002;
                fill('hr', 1, sub { ev_json("in-$k", $k % 2 ? 't.new' : 't.other') }) } 1 .. 40;
sleep 0.01;
my @after = fill('hr', 4, sub { ev_json("post-$_[0]", 't.new') });
my ($from, $to) = (ms_of($in[0]), ms_of($in[-1]));
my @want = map { "in-$_" } grep { $_ % 2 } 1 .. 40;

# --- 2. CSRF and parameters, before anything is written ---------------------

my %ok = (bus => 'hr', from => $from + 0, to => $to + 0, rules => ['new'], name => 'r1');

is_err(post_replay(\%ok, 'none'), 403, 'no CSRF token');
is_err(post_replay(\%ok, 'X-EB-CSRF' => 'f' x 16 . '.' . '0' x 64), 403, 'forged CSRF token');
{
    (my $bad = $TOKEN) =~ s/.$/$& eq '0' ? '1' : '0'/e;
    is_err(post_replay(\%ok, 'X-EB-CSRF' => $bad), 403, 'altered CSRF token');
}

is_err(post_replay('{nope'), 400, 'bad JSON', qr/body/);
is_err(post_replay({ %ok, bus => 'b/x' }), 400, 'bad bus name', qr/"bus"/);
is_err(post_replay({ %ok, from => undef }), 400, 'no from', qr/"from"/);
is_err(post_replay({ %ok, to => "$to" }), 400, 'to as a string', qr/"to"/);
is_err(post_replay({ %ok, from => $to + 0, to => $from + 0 }), 400, 'from after to', qr/"from"/);
is_err(post_replay({ %ok, from => int(time * 1000) + 3600000,
                     to => int(time * 1000) + 7200000 }), 400, 'window in the future', qr/"from"/);
is_err(post_replay({ %ok, rate => 0 }), 400, 'rate 0', qr/"rate"/);
is_err(post_replay({ %ok, rate => 'fast' }), 400, 'rate not a number', qr/"rate"/);
is_err(post_replay({ %ok, name => 'a b' }), 400, 'bad name', qr/"name"/);
is_err(post_replay({ %ok, name => 'x' x 129 }), 400, 'long name', qr/"name"/);
is_err(post_replay({ %ok, rules => 'new' }), 400, 'rules not an array', qr/"rules"/);
is_err(post_replay({ %ok, rules => [] }), 400, 'no rules', qr/"rules"/);
is_err(post_replay({ %ok, rules => ['off'] }), 400, 'disabled rule', qr/"rules"/);
is_err(post_replay({ %ok, targets => ['rx'] }), 400, 'target of no selected rule', qr/"targets"/);
is_err(post_replay({ %ok, bus => 'nobus' }), 404, 'unknown bus', qr/nobus/);
is_err(post_replay({ %ok, rules => ['nope'] }), 404, 'unknown rule', qr/"rules".*nope/);
is_err(post_replay({ %ok, targets => ['nope'] }), 404, 'unknown target', qr/"targets".*nope/);
is_deeply($redis->cmd('KEYS', 'eb:{hr}:replay*'), [], 'refused requests: nothing written');
is(added('eb:{hr}:target:ce'), 0, 'refused requests: nothing enqueued');

{
    my $r = $ngx->request(method => 'PUT', path => '/console/api/replay', body => '{}');
    is($r->{status}, 405, 'PUT api/replay: 405');
}

{
    my $r = post_replay(\%ok);
    is($r->{status}, 202, 'POST api/replay: 202') or diag $r->{body};
    is_deeply([ @{ $r->{json} }{qw(bus name from to state created)} ],
              [ 'hr', 'r1', $from, $to, 'requested', JSON::PP::true ], 'POST: the request');
}

ok(wait_for(sub { ($redis->cmd('HGET', 'eb:{hr}:replay:r1', 'state') // '') eq 'done' }, 20),
   'ebd ran the request') or diag $ebd->log;
ok(wait_for(sub { @{ $peer->requests(path => '/ce') } >= @want }, 20), 'the peer got them');
sleep 0.5;
{
    my $reqs = $peer->requests(path => '/ce');
    is_deeply([ map { $_->{headers}{'ce-id'} } @$reqs ], \@want,
              'peer: the window\'s t.new events, once each, in order');
    is_deeply([ grep { ($_->{headers}{'ce-replay'} // '') ne 'r1' } @$reqs ], [],
              'peer: every one with ce-replay: r1');
    is(added('eb:{hr}:target:rx'), 0, 'rx: nothing (rule other not selected)');
    like($ebd->log, qr/replay r1 of bus hr: done \(40 events, 20 deliveries\)/, 'ebd logs it');
}

{
    my $r = api('replays?bus=hr');
    is($r->{status}, 200, 'GET api/replays: 200');
    my ($one) = grep { $_->{name} eq 'r1' } @{ $r->{json}{replays} // [] };
    ok($one, 'GET api/replays: r1 listed') or diag $r->{body};
    is_deeply([ @$one{qw(state from to events deliveries rules targets progress cursor)} ],
              [ 'done', $from, $to, 40, 20, 'new', '', 1, $in[-1] ],
              'GET api/replays: done, window, counts, selection, cursor');
    is_deeply($one->{per_target}, { ce => 20 }, 'GET api/replays: per target');
    is($one->{owner}, 'ebd-one', 'GET api/replays: the ebd that ran it');
    ok($one->{started} && $one->{updated} >= $one->{started} && $one->{finished},
       'GET api/replays: started, updated, finished');
    is($r->{json}{total}, 1, 'GET api/replays: total');
    is_err(api('replays?bus=nobus'), 404, 'GET api/replays: unknown bus');
    is_err(api('replays'), 400, 'GET api/replays: no bus', qr/"bus"/);
}

{
    my $was = added('eb:{hr}:target:ce');
    my $r = post_replay(\%ok);
    is($r->{status}, 200, 'the same POST again: 200');
    is($r->{json}{state}, 'done', 'the same POST again: its state');
    ok(!$r->{json}{created}, 'the same POST again: not created');
    sleep 1.5;
    is(added('eb:{hr}:target:ce'), $was, 'the same POST again: nothing enqueued');
    is_err(post_replay({ %ok, from => $from + 1 }), 409, 'another window, the same name', qr/"name"/);
    is_err(post_replay({ %ok, rules => ['new', 'other'] }), 409, 'another selection, the same name');
}

{
    # the default name, as ebd replay makes it
    my $r = post_replay({ bus => 'hr', from => $from + 0, to => $to + 0,
                          rules => ['other'], targets => ['rx'] });
    is($r->{status}, 202, 'default name: 202');
    is($r->{json}{name}, "$from-$to-other-rx", 'default name: FROM-TO-RULES-TARGETS');
    ok(wait_for(sub { ($redis->xlen('out:x') // 0) >= 20 }, 20), 'default name: ran');
}

{
    my $st = `'$EBD' -c '$cfg_path' -r '@{[ $redis->addr ]}' replay --status --bus hr 2>&1`;
    like($st, qr/^bus hr  replay r1  done .* events 40  deliveries 20  ce 20  rules new /m,
         'ebd replay --status lists the console\'s replay') or diag $st;
}

# --- 3. kill -9 mid-way: another ebd resumes it -------------------------------------

my $M = 20000;
my @big = fill('big', $M, sub { ev_json("big-$_[0]", 't') });
{
    my $r = post_replay({ bus => 'big', from => ms_of($big[0]) + 0,
                          to => ms_of($big[-1]) + 0, name => 'big1', rate => 2000 });
    is($r->{status}, 202, 'big: requested');
}
ok(wait_for(sub { ($redis->cmd('HGET', 'eb:{big}:replay:big1', 'events') // 0) >= 2000 }, 20),
   'big: under way');
$ebd->kill9;
my %mid = @{ $redis->cmd('HGETALL', 'eb:{big}:replay:big1') };
ok($mid{events} > 0 && $mid{events} < $M, "big: killed after $mid{events} events");
is_deeply([ @mid{qw(state owner)} ], [ 'running', 'ebd-one' ], 'big: running, by ebd-one');
{
    my $r = $redis->cmd('XINFO', 'STREAM', 'eb:{big}:target:rr');
    my %h = @$r;
    is($h{'entries-added'}, $mid{events}, 'big: as many enqueued as the cursor says');
}

# --claim-idle: what ebd-one was delivering when killed goes on soon
my @claim = (args => ['--claim-idle', '2s']);
my $ebd2 = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'ebd-two', @claim);
ok(wait_for(sub { ($redis->cmd('HGET', 'eb:{big}:replay:big1', 'owner') // '') eq 'ebd-two' }, 20),
   'big: ebd-two took it over once the lease was over');

# SIGTERM: handed back, then resumed by the next one
ok(wait_for(sub { ($redis->cmd('HGET', 'eb:{big}:replay:big1', 'events') // 0)
                  >= $mid{events} + 1000 }, 20), 'big: ebd-two goes on');
$ebd2->stop;
{
    my %h = @{ $redis->cmd('HGETALL', 'eb:{big}:replay:big1') };
    if ($h{state} eq 'done') {
        pass('SIGTERM: (done before the signal)');
    } else {
        is_deeply([ $h{state}, $h{lease} ], [ 'requested', undef ], 'SIGTERM: handed back, no lease');
    }
}
my $ebd3 = EBTest::Ebd->start(config => $cfg_path, redis => $redis, name => 'ebd-three', @claim);

ok(wait_for(sub { ($redis->cmd('HGET', 'eb:{big}:replay:big1', 'state') // '') eq 'done' }, 60),
   'big: done');
{
    # the replay itself: the target stream got each event once (a batch
    # twice would add more, a skipped one fewer), in order as far as
    # ebd left them there
    is(added('eb:{big}:target:rr'), $M, "big: $M entries appended to the target stream, no more");
    my %h = @{ $redis->cmd('HGETALL', 'eb:{big}:replay:big1') };
    is_deeply([ @h{qw(events deliveries t:rr)} ], [ $M, $M, $M ], 'big: the counts');
}
# delivery is at least once: what ebd-one had in flight when killed may
# arrive twice and late; every event arrives
my %seen;
ok(wait_for(sub {
    %seen = ();
    my $start = '-';
    while (1) {
        my $r = $redis->cmd('XRANGE', 'out:r', $start, '+', 'COUNT', 10000);
        last unless ref $r eq 'ARRAY' && @$r;
        for (@$r) { my %f = @{ $_->[1] }; $seen{($f{event} =~ /"id":"([^"]*)"/)[0]}++ }
        last if @$r < 10000;
        $start = "($r->[-1][0]";
    }
    keys %seen >= $M }, 60), 'big: delivered');
is_deeply([ sort { $a <=> $b } map { /^big-(\d+)$/ ? $1 : -1 } keys %seen ], [ 1 .. $M ],
          'big: every event delivered: none skipped');
{
    my @twice = grep { $seen{$_} > 1 } keys %seen;
    ok(@twice <= 250, 'big: twice only what was in flight at the kill (' . scalar(@twice) . ')');
}

my @bad = ($ngx->log_problems, $ebd->log_problems, $ebd2->log_problems, $ebd3->log_problems);
ok(!@bad, 'no alerts or sanitizer reports') or diag join "\n", @bad;

$ebd3->stop;
$ngx->stop;
done_testing;
