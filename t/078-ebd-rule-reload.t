#!/usr/bin/perl
# nginx reloaded with new rules before ebd: entries of a rule ebd does not
# know yet are retried (the reason in the trace), not dead-lettered; once
# ebd gets the new file (SIGHUP) they are delivered, once each, without
# waiting out their retry. A rule that never comes is dead-lettered after
# the target's retries. Real nginx, Redis and ebd (`redis` targets).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;

my $dir = tempdir('eb-075-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = EBTest::Redis->start;

sub entries { $_[0]->xrange($_[1]) }

sub pending_count {
    my ($stream) = @_;
    my $r = $redis->cmd('XPENDING', $stream, 'ebd');
    return ref $r eq 'ARRAY' ? $r->[0] : -1;
}

# the event ids in a target's output stream, with how often each came
sub delivered {
    my ($stream) = @_;
    my %n;
    $n{ (EBTest::json_decode($_->[1]{event}) // {})->{id} // '' }++
        for @{ entries($redis, $stream) };
    return \%n;
}

# A retry long enough that an entry still waiting when ebd reloads is
# seen to go out at once, not when its retry is due.
my $slow = { strategy => 'backoff', attempts => 5, interval => '30s',
             max_interval => '30s' };

my $v1 = {
    targets => {
        sink  => { type => 'redis', address => $redis->addr, stream => 'out:sink',
                   retry => $slow },
        quick => { type => 'redis', address => $redis->addr, stream => 'out:quick',
                   retry => { strategy => 'backoff', attempts => 2,
                              interval => '50ms', max_interval => '80ms' } },
    },
    buses => { app => { rules => {
        old   => { pattern => { data => { body => { kind => ['old'] } } },
                   targets => [ { target => 'sink' } ] },
        quick => { pattern => { data => { body => { kind => ['quick'] } } },
                   targets => [ { target => 'quick' } ] },
    } } },
};

# v2: a new rule to the existing target, and a new rule with a new target
my $v2 = $JSON->decode($JSON->encode($v1));
$v2->{targets}{fresh} = { type => 'redis', address => $redis->addr,
                          stream => 'out:fresh', retry => $slow };
$v2->{buses}{app}{rules}{new} = { pattern => { data => { body => { kind => ['new'] } } },
                                  targets => [ { target => 'sink' } ] };
$v2->{buses}{app}{rules}{newt} = { pattern => { data => { body => { kind => ['newt'] } } },
                                   targets => [ { target => 'fresh' } ] };

my $ebd_cfg = "$dir/ebd.json";
write_file($ebd_cfg, $JSON->encode($v1));

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /app { eventbridge_source app.src bus=app; }
    }
EOF
write_file($ngx->dir . '/buses.json', $JSON->encode($v1));
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $ebd_cfg, redis => $redis, name => 'r1',
                             level => 'info');
like($ebd->log, qr/ebd: ready: consumer "r1", 2 route\(s\)/, 'ebd ready with the old file');

sub post {
    my ($body) = @_;
    my $r = $ngx->request(method => 'POST', path => '/app', body => $body,
                          headers => [ 'Content-Type' => 'application/json' ]);
    return $r->{status} == 200 ? (EBTest::json_decode($r->{body}) // {})->{eventId} : undef;
}

my $old = post('{"kind":"old"}');
ok(wait_for(sub { delivered('out:sink')->{$old} }, 10), 'the old rule delivers');

# --- nginx gets the new rules, ebd does not -----------------------------------

write_file($ngx->dir . '/buses.json', $JSON->encode($v2));
my @before = $ngx->worker_pids;
$ngx->reload;
ok(wait_for(sub { my %b = map { $_ => 1 } @before;
                  my @w = $ngx->worker_pids;
                  @w && !grep { $b{$_} } @w }, 15),
   'nginx reloaded with the new rules');
sleep 0.3;

my (@new, @newt);
for (1 .. 5) {
    push @new, post(qq({"kind":"new","n":$_}));
    push @newt, post(qq({"kind":"newt","n":$_}));
}
is(scalar(grep { defined } @new, @newt), 10, '10 events accepted for the new rules');
my @stored = grep { $_->[1]{rule} eq 'new' } @{ entries($redis, 'eb:{app}:target:sink') };
is(scalar @stored, 5, 'nginx fanned the new rule out to the existing target');

# every entry of the unknown rule fails its first attempt with the reason,
# as a retry
my $reason = qr/rule "new" of bus "app" does not send to target "sink" in ebd's configuration/;
ok(wait_for(sub {
        my %t = map { $_->[1]{event} => $_->[1] }
                grep { ($_->[1]{rule} // '') eq 'new' } @{ entries($redis, 'eb:{app}:trace') };
        5 == grep { $t{$_} && $t{$_}{outcome} eq 'retry' && $t{$_}{error} =~ $reason } @new
   }, 10), 'unknown rule: each attempt traced as a retry, with the reason')
    or diag explain [ map { $_->[1] } @{ entries($redis, 'eb:{app}:trace') } ];
sleep 1;
is($redis->xlen('eb:{app}:dlq:sink'), 0, 'unknown rule: nothing dead-lettered');
is(scalar(grep { delivered('out:sink')->{$_} } @new), 0, 'unknown rule: nothing delivered yet');
is(pending_count('eb:{app}:target:sink'), 5, 'unknown rule: the 5 entries stay pending');
is($redis->xlen('out:fresh'), 0, 'a target ebd does not know yet: nothing delivered');
like($ebd->log, qr/target sink: event \S+ attempt 1 failed \($reason\), retry in \d+ ms/,
     'unknown rule: the log says it is retried');

# a rule that never comes: given up after the target's retries
$redis->cmd('XADD', 'eb:{app}:target:quick', '*', 'rule', 'ghost',
            'event', '{"id":"ghost-1","source":"x","specversion":"1.0","type":"t"}');
ok(wait_for(sub { @{ entries($redis, 'eb:{app}:dlq:quick') } == 1 }, 10),
   'a rule that never comes: dead-lettered after the retries');
{
    my $d = entries($redis, 'eb:{app}:dlq:quick')->[0][1] // {};
    is($d->{attempts}, 3, 'dead letter: after 1 + 2 attempts');
    like($d->{error}, qr/rule "ghost" of bus "app" does not send to target "quick".*gave up after 3 attempt/,
         'dead letter: with the reason');
}

# --- ebd gets the new file -----------------------------------------------------

write_file($ebd_cfg, $JSON->encode($v2));
my $t0 = time;
$ebd->reload;
ok(wait_for(sub { $ebd->log =~ /configuration reloaded/ }, 10), 'ebd: SIGHUP, reloaded');
ok(wait_for(sub { my $d = delivered('out:sink'); 5 == grep { $d->{$_} } @new }, 15),
   'after the reload: the new rule\'s events are delivered');
cmp_ok(time - $t0, '<', 20, 'without waiting out their 30 s retry');
ok(wait_for(sub { my $d = delivered('out:fresh'); 5 == grep { $d->{$_} } @newt }, 15),
   'after the reload: the new target\'s events are delivered');
ok(wait_for(sub { pending_count('eb:{app}:target:sink') == 0
                  && pending_count('eb:{app}:target:fresh') == 0 }, 10),
   'after the reload: all acknowledged');
sleep 1;
{
    my $d = delivered('out:sink');
    is_deeply([ map { $d->{$_} } @new ], [ (1) x 5 ], 'delivered once each (existing target)');
    $d = delivered('out:fresh');
    is_deeply([ map { $d->{$_} } @newt ], [ (1) x 5 ], 'delivered once each (new target)');
}
is($redis->xlen('eb:{app}:dlq:sink'), 0, 'after the reload: still no dead letter');
is($redis->xlen('eb:{app}:dlq:fresh'), 0, 'after the reload: none for the new target');
{
    my @t = grep { $_->[1]{event} eq $new[0] } @{ entries($redis, 'eb:{app}:trace') };
    is($t[-1][1]{outcome}, 'delivered', 'the trace: the last attempt delivered');
    cmp_ok($t[-1][1]{attempt}, '>=', 2, 'the trace: after the failed attempt(s)');
}

$ebd->finish;
$ngx->finish;
done_testing;
