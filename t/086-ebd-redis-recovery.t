#!/usr/bin/perl
# No route of ebd stays stuck (issue 8): (a) Redis restarted with an
# append-only file that takes seconds to load answers -LOADING to ebd's
# XGROUP CREATE and XREADGROUP; once loaded, every route delivers again
# by itself (it used to wait for an ebd restart), and the trouble is
# logged once per connection, not once per attempt. (b) The connections
# between ebd and Redis are black-holed (open, silent, no FIN, no RST):
# the watchdog (--redis-timeout) drops them and ebd delivers again within
# about one timeout. (c) A server that accepts connections and never
# answers AUTH: the watchdog covers the handshake too. (d) A reload whose
# grace time ends while commands wait for answers that never come: their
# callbacks, run when the watchdog drops the connection, find no freed
# route.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file);
use EBTest::Peer;
use EBTest::Blackhole;
use IO::Socket::IP;
use File::Temp ();

my $EBD = EBTest::Ebd::binary();
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;
plan skip_all => 'redis-server not installed'
    unless `redis-server --version 2>/dev/null` =~ /v=(\d+)/ && $1 >= 7;

my $JSON = JSON::PP->new->utf8->canonical;
my $peer = EBTest::Peer->start(control => { default => 200 });
my @buses = qw(r1 r2);
my $cfg = {
    targets => {
        hook => { type => 'http', url => $peer->url('/hook'),
                  retry => { strategy => 'backoff', attempts => 1000,
                             interval => '50ms', max_interval => '200ms' } },
    },
    buses => { map { $_ => { rules => {
        all => { pattern => { source => [{ prefix => '' }] },
                 targets => [ { target => 'hook' } ] } } } } @buses },
};

my $n = 0;

sub write_events {
    my ($redis, $count) = @_;
    my @ids;
    for (1 .. $count) {
        my $bus = $buses[$n % 2];
        my $id = "e" . ++$n;
        my $r = $redis->cmd('XADD', "eb:{$bus}:target:hook", '*', 'rule', 'all',
                            'event', qq({"id":"$id","source":"t086","type":"t.e"}));
        die "XADD: $r->{error}" if ref $r;
        push @ids, $id;
    }
    return @ids;
}

sub delivered { $peer->delivered_ids(path => '/hook') }

sub count_delivered {
    my $d = delivered();
    return scalar grep { $d->{$_} } @_;
}

sub figures {
    my ($what, @ids) = @_;
    my $d = delivered();
    my $ok = grep { $d->{$_} } @ids;
    my $dups = 0;
    $dups += $d->{$_} - 1 for grep { $d->{$_} } @ids;
    diag sprintf "%s: written %d, delivered %d, lost %d, duplicates %d",
        $what, scalar @ids, $ok, @ids - $ok, $dups;
}

# --- usage errors of the Redis options ---------------------------------------

for my $case (
    [ [ '-r', '127.0.0.1:1,127.0.0.1:2' ], qr/2 addresses need --cluster or --sentinel/ ],
    [ [ '--cluster', '--sentinel', 'm' ], qr/--cluster and --sentinel exclude each other/ ],
    [ [ '--cluster', '-r', '/tmp/redis.sock' ], qr/reached over TCP/ ],
    [ [ '--cluster', '-d', '2' ], qr/database 0 only/ ],
    [ [ '--redis-timeout', '5x' ], qr/--redis-timeout: invalid duration/ ],
    [ [ '--redis-timeout', '10ms' ], qr/--redis-timeout: 100ms at least/ ],
    [ [ '-r', '127.0.0.1:99999' ], qr/-r: invalid port/ ],
    [ [ '-r', '127.0.0.1:1,,127.0.0.1:2', '--cluster' ], qr/-r: empty address/ ],
    [ [ '--sentinel', '' ], qr/--sentinel: the master's name is empty/ ],
    [ [ '--redis-user', 'u' ], qr/--redis-user needs a password/ ],
) {
    my ($args, $re) = @$case;
    my $cmd = join ' ', map { "'$_'" } $EBD, '-c', '/dev/null', @$args;
    my $out = `$cmd 2>&1`;
    is($? >> 8, 2, "usage: @$args: exit 2");
    like($out, $re, "usage: @$args: says why");
}

# --- (a) LOADING ---------------------------------------------------------------

{
    # every key loads 150 us late and the server answers (-LOADING)
    # between keys: 20,000 keys take a few seconds to load
    my $redis = EBTest::Redis->start(appendonly => 'yes', args => [
        '--key-load-delay', '150', '--loading-process-events-interval-bytes',
        '1024', '--enable-debug-command', 'local' ]);
    $redis->cmd('DEBUG', 'POPULATE', 20000, 'filler');
    $redis->cmd('BGREWRITEAOF');    # an RDB preamble: loaded key by key
    wait_for(sub { ($redis->cmd('INFO', 'persistence') // '')
                   =~ /aof_rewrite_in_progress:0/ }, 10);
    sleep 0.2;

    my $dir = $redis->{dir};
    write_file("$dir/buses.json", $JSON->encode($cfg));
    my $ebd = EBTest::Ebd->start(config => "$dir/buses.json", redis => $redis,
                                 name => 'l', args => [ '--block', '500ms',
                                                        '--claim-idle', '5s' ]);
    ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'loading: ebd ready')
        or BAIL_OUT("ebd did not start:\n" . $ebd->log);

    my @ids = write_events($redis, 10);
    ok(wait_for(sub { count_delivered(@ids) == 10 }, 10),
       'loading: 10 events delivered before the restart');

    my $t = time;
    $redis->restart;                # returns once PING answers again
    my $loading = time - $t;
    cmp_ok($loading, '>=', 1.5, sprintf 'loading: Redis was loading for '
           . '%.1f s', $loading);
    ok(wait_for(sub { $ebd->log =~ /LOADING/ }, 1),
       'loading: ebd was answered -LOADING');

    $t = time;
    my @more = write_events($redis, 20);
    ok(wait_for(sub { count_delivered(@more) == 20 }, 15),
       sprintf 'loading: 20 of 20 events delivered %.1f s after loading '
       . 'ended, no ebd restart', time - $t);
    figures('loading', @ids, @more);
    my @lines = grep { /LOADING/ } split /\n/, $ebd->log;
    # 2 readers + 2 command connections (XAUTOCLAIM, XACK), each may say
    # it once per command
    cmp_ok(scalar @lines, '<=', 8, sprintf 'loading: said %d time(s), '
           . 'not once per attempt', scalar @lines) or diag join "\n", @lines;
    like($ebd->log, qr/answers again/, 'loading: the recovery is logged');
    note $ebd->log;
    $ebd->finish;
    $redis->stop;
}

# --- (b) black-holed connections ------------------------------------------------

# Redis behind a proxy that can turn into a black hole, ebd (NAME,
# --block 200ms --redis-timeout 2s, then ARGS) through it, and 10 events
# delivered: (redis, hole, ebd, ids)
sub behind_hole {
    my ($label, $name, @args) = @_;
    my $redis = EBTest::Redis->start;
    my $hole = EBTest::Blackhole->start(to => $redis->addr);
    my $dir = $redis->{dir};
    write_file("$dir/buses.json", $JSON->encode($cfg));
    my $ebd = EBTest::Ebd->start(config => "$dir/buses.json",
                                 redis_addr => $hole->addr, name => $name,
                                 args => [ '--block', '200ms',
                                           '--redis-timeout', '2s', @args ]);
    ok($ebd->alive && $ebd->log =~ /ebd: ready/, "$label: ebd ready")
        or BAIL_OUT("ebd did not start:\n" . $ebd->log);
    my @ids = write_events($redis, 10);
    ok(wait_for(sub { count_delivered(@ids) == 10 }, 10),
       "$label: 10 events delivered through the proxy");
    return ($redis, $hole, $ebd, @ids);
}

{
    my ($redis, $hole, $ebd, @ids) =
        behind_hole('black hole', 'b', '--claim-idle', '5s');

    $hole->blackhole;
    my $t = time;
    cmp_ok($hole->held, '>=', 4, 'black hole: ' . $hole->held
           . ' connections held open, silent');
    my @more = write_events($redis, 10);
    ok(wait_for(sub { count_delivered(@more) == 10 }, 10),
       'black hole: 10 more delivered');
    my $took = time - $t;
    cmp_ok($took, '<', 5, sprintf 'black hole: delivering again after %.1f s '
           . '(--redis-timeout 2s)', $took);
    figures('black hole', @ids, @more);
    like($ebd->log, qr/no answer within \d+ ms; connecting again/,
         'black hole: the watchdog says what it did');
    note $ebd->log;
    $ebd->finish;
    $hole->stop;
}

# --- (d) a reload whose grace time ends with commands unanswered ------------------

{
    # claims and refreshes (a route their callback's data) go out on the
    # bus's command connection and are never answered; the reload's grace
    # time ends, the old routes are freed; the watchdog drops the
    # connection later, and hiredis runs those callbacks: they must not
    # reach the freed routes (under ASan a use after free is a report)
    my ($redis, $hole, $ebd, @ids) =
        behind_hole('grace', 'g', '--claim-idle', '300ms', '--grace', '300ms');

    $hole->blackhole;
    sleep 0.5;                      # claims and refreshes sent, unanswered
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /configuration reloaded/ }, 5),
       'grace: the reload went ahead after the grace time');
    like($ebd->log, qr/commands: no answer within 300 ms of the reload; connecting again/,
         'grace: the unanswered command connections were dropped, and said so');
    my @more = write_events($redis, 10);
    ok(wait_for(sub { count_delivered(@more) == 10 }, 10),
       'grace: 10 more delivered after the reload');
    ok($ebd->alive, 'grace: ebd still running');
    figures('grace', @ids, @more);
    note $ebd->log;
    $ebd->finish;
    $hole->stop;
}

# --- (c) a server that accepts and never answers: the handshake's watchdog -----

{
    # the kernel completes the connections (the backlog); nobody reads
    my $silent = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                     Listen => 64, ReuseAddr => 1)
        or die "listen: $@";
    my $dir = File::Temp::tempdir('eb-086-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    write_file("$dir/buses.json", $JSON->encode($cfg));
    my $ebd = EBTest::Ebd->start(config => "$dir/buses.json",
                                 redis_addr => '127.0.0.1:' . $silent->sockport,
                                 name => 's', ready_mark => 'ebd: starting',
                                 args => [ '-a', 'never-answered',
                                           '--redis-timeout', '1s' ]);
    my $t = time;
    ok(wait_for(sub { $ebd->log =~ /commands: no answer within 1000 ms/ }, 5),
       sprintf 'handshake: AUTH unanswered, dropped after %.1f s '
       . '(--redis-timeout 1s)', time - $t);
    sleep 2.5;
    my @said = $ebd->log =~ /eb:\{r1\}:commands: no answer within/g;
    is(scalar @said, 1, 'handshake: said once, though tried again and again');
    $ebd->finish;
}

done_testing;
