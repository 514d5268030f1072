#!/usr/bin/perl
# Reloads and graceful shutdown under steady load: every event answered
# with 200 must be in the stream, clients see nothing but 200 (or, on
# shutdown, a refused/closed connection), and the metrics survive reloads.
use strict;
use warnings;
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::IP;
use POSIX ();
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for);

# Reloads dlopen() the module again: work on a private copy, so that a
# concurrent rebuild of build/ cannot pull it away under a reload.
{
    my $mod = EBTest::Nginx::module();
    if ($mod && -f $mod) {
        my $d = tempdir('eb-mod-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        copy($mod, "$d/ngx_http_eventbridge_module.so") or die "copy: $!";
        chmod 0755, "$d/ngx_http_eventbridge_module.so";
        $ENV{TEST_EB_MODULE} = "$d/ngx_http_eventbridge_module.so";
    }
}

# A frozen (SIGSTOP) Redis must always be continued, or the harness's
# cleanup (TERM + waitpid) would hang on it.
my @frozen;
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
$SIG{INT} = $SIG{TERM} = sub { kill 'CONT', $_ for @frozen; EBTest::cleanup_all(); exit 1 };

# A request sent now whose answer is read later.
sub send_request {
    my ($port, $body) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'tcp', Timeout => 5)
        or die "connect: $@";
    local $SIG{PIPE} = 'IGNORE';
    print {$s} "POST /hook HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}

# (status, event id) of the answer on $s
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
    my $status = $resp =~ m{^HTTP/1\.[01] (\d+)} ? $1 : 0;
    my $id = $resp =~ /"eventId":"([^"]+)"/ ? $1 : undef;
    return ($status, $id);
}

my @children;
sub reap_children {
    for my $pid (@children) {
        kill 'KILL', $pid if kill 0, $pid;
        waitpid $pid, 0;
    }
    @children = ();
}
END { my $rc = $?; kill 'CONT', $_ for @frozen; reap_children(); $? = $rc; }

my $KEY = 'eb:{reloadbus}:events';

sub conf {
    my ($region) = @_;
    return <<"EOF";
    eventbridge_redis %%REDIS%%;
    eventbridge_region $region;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source reload.src bus=reloadbus; }
        location /status { eventbridge_status; }
    }
EOF
}

# Forks $n clients that POST one after another for $secs seconds; each
# writes one line per request to its own file: "200 ID", "STATUS -",
# "refused", "closed" (connection closed without an answer) or "partial".
# A client stops at its first refused connection when $stop_on_refused.
sub start_clients {
    my ($port, $n, $secs, $dir, $stop_on_refused) = @_;
    my @files;
    for my $i (1 .. $n) {
        my $file = "$dir/client$i";
        push @files, $file;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            # the harness's signal handlers and END block are the parent's
            $SIG{INT} = $SIG{TERM} = 'DEFAULT';
            open my $fh, '>', $file or POSIX::_exit(1);
            $fh->autoflush(1);
            my $end = time + $secs;
            my $seq = 0;
            while (time < $end) {
                $seq++;
                my $r = EBTest::http(port => $port, method => 'POST',
                    path => "/hook?client=$i&seq=$seq",
                    headers => ['Content-Type' => 'application/json'],
                    body => qq({"client":$i,"seq":$seq}), timeout => 10);
                my $line;
                if ($r->{status} == 200) {
                    $line = '200 ' . ($r->{json}{eventId} // 'noid');
                } elsif ($r->{status}) {
                    $line = "$r->{status} -";
                } elsif (($r->{error} // '') =~ /^connect/) {
                    $line = 'refused';
                } elsif (($r->{raw} // '') eq '') {
                    $line = 'closed';
                } else {
                    $line = 'partial';
                }
                print {$fh} "$line\n";
                last if $line eq 'refused' && $stop_on_refused;
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @children, $pid;
    }
    return @files;
}

sub wait_clients {
    my ($timeout) = @_;
    my $end = time + $timeout;
    for my $pid (@children) {
        while (time < $end) {
            last if waitpid($pid, POSIX::WNOHANG()) != 0;
            sleep 0.05;
        }
    }
    my $stuck = grep { kill 0, $_ } @children;
    reap_children();
    return !$stuck;
}

# { counts => { outcome => n }, ids => [ ids answered with 200 ] }
sub results {
    my (@files) = @_;
    my (%count, @ids);
    for my $f (@files) {
        open my $fh, '<', $f or next;
        while (my $line = <$fh>) {
            chomp $line;
            my ($what, $id) = split / /, $line;
            $count{$what}++;
            push @ids, $id if $what eq '200';
        }
    }
    return { counts => \%count, ids => \@ids };
}

sub stream_events {
    my ($redis) = @_;
    my %ev;
    for my $e (@{ $redis->xrange($KEY) }) {
        my $ev = EBTest::json_decode($e->[1]{event} // '') // {};
        $ev{$ev->{id}} = $ev if defined $ev->{id};
    }
    return \%ev;
}

sub accepted {
    my ($ngx) = @_;
    return $ngx->metrics->{eventbridge_events_accepted_total};
}

sub describe { my ($c) = @_; join ', ', map { "$_: $c->{$_}" } sort keys %$c }

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, workers => 2, http => conf('r0'));
$ngx->start;

# --- 1. three reloads under load ---------------------------------------------

my @workers0 = $ngx->worker_pids;
is(scalar @workers0, 2, 'two workers');

my $dir = tempdir('eb-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @files = start_clients($ngx->port, 3, 4, $dir, 0);
for my $region (qw(r1 r2 r3)) {
    sleep 1;
    $ngx->write_conf(conf($region));
    $ngx->reload;
}
ok(wait_clients(15), 'load clients finished');

my $res = results(@files);
my $c = $res->{counts};
diag('reload under load: ' . describe($c));
cmp_ok($c->{200} // 0, '>', 0, 'reload: requests answered with 200');
is(scalar(grep { $_ ne '200' } keys %$c), 0,
   'reload: no client saw anything but 200')
    or diag('outcomes: ' . describe($c));

my $ev = stream_events($redis);
my @missing = grep { !$ev->{$_} } @{ $res->{ids} };
is(scalar @missing, 0,
   'reload: every acknowledged event id is in the stream ('
   . scalar(@{ $res->{ids} }) . ' acknowledged, '
   . scalar(keys %$ev) . ' in the stream)')
    or diag('missing: ' . join ' ', @missing[0 .. ($#missing > 9 ? 9 : $#missing)]);
is(scalar(keys %$ev), scalar(@{ $res->{ids} }),
   'reload: no event in the stream that was not answered with 200');

my %regions;
$regions{ $_->{aliyunregionid} // '' }++ for values %$ev;
diag('events by region: ' . describe(\%regions));
ok($regions{r3}, 'reload: the last configuration (region r3) took effect');

my $reconf = () = $ngx->error_log =~ /\(SIGHUP\) received/g;
is($reconf, 3, 'three reloads done');
ok(wait_for(sub {
        my @w = $ngx->worker_pids;
        my %old = map { $_ => 1 } @workers0;
        @w == 2 && !grep { $old{$_} } @w }, 10),
   'old workers exited, two new ones run');

# --- 2. metrics survive reloads ----------------------------------------------

my $n200 = scalar @{ $res->{ids} };
my $acc0 = accepted($ngx);
is($acc0, $n200, 'metrics: accepted_total counts every 200 across 3 reloads');

{
    my @w = $ngx->worker_pids;
    $ngx->reload;
    my %old = map { $_ => 1 } @w;
    ok(wait_for(sub {
            my @n = $ngx->worker_pids;
            @n == 2 && !grep { $old{$_} } @n }, 10),
       'metrics: reloaded once more');
    my $acc1 = accepted($ngx);
    is($acc1, $acc0, 'metrics: accepted_total unchanged by the reload');
    my $ok = 0;
    for (1 .. 5) {
        $ok++ if $ngx->request(method => 'POST', path => '/hook',
                               body => '{"after":"reload"}')->{status} == 200;
    }
    is($ok, 5, 'metrics: 5 more events accepted');
    is(accepted($ngx), $acc0 + 5, 'metrics: accepted_total goes on from there');
    $n200 += $ok;
}

# --- 3. reload with appends in flight -----------------------------------------

# Redis frozen: the old workers hold unanswered appends when the reload
# comes; they must stay until Redis answers and then answer 200.
{
    my @w = $ngx->worker_pids;
    my (@socks, @got);
    with_frozen($redis->{pid}, sub {
        @socks = map { send_request($ngx->port, qq({"inflight":$_})) } 1 .. 4;
        sleep 0.3;
        $ngx->reload;
        sleep 0.7;
    });
    @got = map { [ read_response($_, 6) ] } @socks;
    is(scalar(grep { $_->[0] == 200 } @got), 4,
       'reload in flight: the 4 appends pending at the reload got 200')
        or diag('statuses: ' . join ' ', map { $_->[0] } @got);
    my $ev = stream_events($redis);
    is(scalar(grep { defined $_->[1] && $ev->{$_->[1]} } @got), 4,
       'reload in flight: their events are in the stream');
    $n200 += grep { $_->[0] == 200 } @got;
    my %old = map { $_ => 1 } @w;
    ok(wait_for(sub { !grep { $old{$_} } $ngx->worker_pids }, 10),
       'reload in flight: the old workers exited afterwards');
}

# --- 4. graceful shutdown (QUIT) under load ----------------------------------

{
    my $dir2 = tempdir('eb-quit-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @f = start_clients($ngx->port, 3, 4, $dir2, 1);
    sleep 1.2;
    my $master = $ngx->master_pid;
    my $t0 = time;
    $ngx->stop;                 # QUIT, waits for the master to exit
    my $dt = time - $t0;
    diag(sprintf 'graceful shutdown took %.2f s', $dt);
    ok($master && !kill(0, $master), 'nginx exited after QUIT');
    ok(wait_clients(15), 'shutdown clients finished');

    my $r = results(@f);
    my $c = $r->{counts};
    diag('shutdown under load: ' . describe($c));
    cmp_ok($c->{200} // 0, '>', 0, 'shutdown: requests answered with 200 before it');
    is(scalar(grep { !/^(200|refused|closed)$/ } keys %$c), 0,
       'shutdown: clients saw only 200, refused or closed connections')
        or diag('outcomes: ' . describe($c));

    my $ev = stream_events($redis);
    my @missing = grep { !$ev->{$_} } @{ $r->{ids} };
    is(scalar @missing, 0,
       'shutdown: every acknowledged event id is in the stream ('
       . scalar(@{ $r->{ids} }) . ' acknowledged)')
        or diag('missing: ' . join ' ', @missing[0 .. ($#missing > 9 ? 9 : $#missing)]);
    is(scalar(keys %$ev), $n200 + scalar(@{ $r->{ids} }),
       'shutdown: the stream holds exactly the acknowledged events');
}

$ngx->finish;

# --- 5. graceful shutdown with appends in flight ------------------------------

{
    my $ngx2 = EBTest::Nginx->new(redis => $redis, http => conf('q'));
    $ngx2->start;
    my $master = $ngx2->master_pid;
    my (@socks, $alive);
    with_frozen($redis->{pid}, sub {
        @socks = map { send_request($ngx2->port, qq({"quit":$_})) } 1 .. 3;
        sleep 0.3;
        kill 'QUIT', $master;
        sleep 0.7;
        $alive = kill 0, $master;
    });
    ok($alive, 'shutdown in flight: nginx waits for the pending appends');
    my @got = map { [ read_response($_, 6) ] } @socks;
    is(scalar(grep { $_->[0] == 200 } @got), 3,
       'shutdown in flight: the 3 pending appends got 200')
        or diag('statuses: ' . join ' ', map { $_->[0] } @got);
    my $ev = stream_events($redis);
    is(scalar(grep { defined $_->[1] && $ev->{$_->[1]} } @got), 3,
       'shutdown in flight: their events are in the stream');
    ok(wait_for(sub { !kill 0, $master }, 10), 'shutdown in flight: nginx exited');
    $ngx2->finish;
}

done_testing;
