package EBTest::Load;

# Steady HTTP load for the fault tests: POSTs at a fixed rate for a fixed
# time, from a forked child, while the test kills, migrates or
# black-holes Redis; then tells what every request got.
#
#   my $l = EBTest::Load->start(url => "http://127.0.0.1:$port/path",
#               rate => 200, seconds => 10, concurrency => 8,
#               body => sub { my ($i) = @_; ... },   # or a fixed string
#               headers => { 'Content-Type' => 'application/json' },
#               method => 'POST', timeout => 10);
#   my $res = $l->wait;     # (or $l->stop: ends it early, no result)
#
# $res = { planned, sent, skipped (due but never sent: all connections
#          were waiting for answers until the end), ok (2xx), s503, other
#          (any other status), errors (no answer: connect or read failure,
#          timeout), status => { CODE => N }, ids => [ eventIds of the 2xx
#          answers, in the order the requests were scheduled ],
#          latencies => [ ms, sorted ], p50, p99, max (ms), duration (s),
#          t0 (the start, a Time::HiRes time),
#          requests => [ [ i, t (s since t0), status, ms, [ids] ] ] }
#   $l->elapsed             seconds since t0 (to note when a fault began)
#   EBTest::Load->first_ok_after($res, $t)   t of the first request sent
#                           at or after $t that got a 2xx (undef: none)
#   EBTest::Load->oks_between($res, $t1, $t2)  how many requests sent in
#                           [$t1, $t2) got a 2xx ($t2 undef: to the end)
#   EBTest::Load->summary($res)              one line for note/diag
#
# Request i is due at t0 + i / rate and goes out then (open loop: slow
# answers do not lower the rate) on an idle keep-alive HTTP/1.1
# connection, or a new one while fewer than `concurrency` are open;
# beyond that it waits for one. No request starts after the end (+0.5 s),
# so wait() returns within seconds + timeout. One forked, non-blocking
# process, core Perl only. The eventIds are every "eventId" in a 2xx body
# (a source's {"eventId": ...}, or each entry of a PutEvents answer).

use strict;
use warnings;
use IO::Socket::IP;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(sleep time);

my $JSON = JSON::PP->new->utf8->canonical;

sub start {
    my ($class, %o) = @_;
    my $self = bless { rate => 100, seconds => 5, concurrency => 16,
                       method => 'POST', timeout => 10, body => '{}',
                       headers => { 'Content-Type' => 'application/json' },
                       %o }, $class;
    my ($host, $port, $path) = $self->{url}
        =~ m{^http://([^/:]+|\[[^\]]+\]):(\d+)(/.*)?$}
        or die "EBTest::Load: url must be http://HOST:PORT/PATH";
    $host =~ s/^\[(.*)\]$/$1/;
    @$self{qw(host port path)} = ($host, $port, $path // '/');
    $self->{dir} //= tempdir('eb-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{total} = int($self->{rate} * $self->{seconds});
    $self->{t0} = time + 0.05;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(1) };
        eval { $self->_run };
        print STDERR "load: $@" if $@;
        POSIX::_exit(0);
    }
    $self->{pid} = $pid;
    EBTest::register($self);
    return $self;
}

sub dir { $_[0]{dir} }
sub elapsed { time - $_[0]{t0} }

sub first_ok_after {
    my ($class, $res, $t) = @_;
    for my $r (@{ $res->{requests} }) {
        return $r->[1] if $r->[1] >= $t && $r->[2] >= 200 && $r->[2] < 300;
    }
    return;
}

sub oks_between {
    my ($class, $res, $t1, $t2) = @_;
    return scalar grep {
        $_->[1] >= $t1 && (!defined $t2 || $_->[1] < $t2)
            && $_->[2] >= 200 && $_->[2] < 300
    } @{ $res->{requests} };
}

# When the first 2xx answer came (Load's clock) to a request sent at or
# after $t; undef if none did.
sub first_answer_after {
    my ($class, $res, $t) = @_;
    my $first;
    for my $r (@{ $res->{requests} }) {
        my (undef, $sent, $st, $ms) = @$r;
        next if $sent < $t || $st < 200 || $st >= 300;
        my $end = $sent + $ms / 1000;
        $first = $end if !defined $first || $end < $first;
    }
    return $first;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

# Waits for the end (at most seconds + timeout + 30 s, then stops it)
# and returns the results.
sub wait {
    my ($self) = @_;
    my $pid = $self->{pid} or die "EBTest::Load: not running";
    my $end = time + $self->{seconds} + $self->{timeout} + 30;
    while (time < $end) {
        my $r = waitpid $pid, WNOHANG;
        last if $r == $pid || $r < 0;
        sleep 0.05;
    }
    $self->stop if kill 0, $pid;
    delete $self->{pid};
    return $self->results;
}

sub results {
    my ($self) = @_;
    my @req;
    if (open my $fh, '<', "$self->{dir}/requests.jsonl") {
        while (my $line = <$fh>) {
            my $r = eval { $JSON->decode($line) } or next;
            push @req, $r;
        }
    }
    @req = sort { $a->[0] <=> $b->[0] } @req;
    my %res = (t0 => $self->{t0}, planned => $self->{total},
               sent => scalar @req, skipped => $self->{total} - @req,
               ok => 0, s503 => 0, other => 0, errors => 0, status => {},
               ids => [], requests => \@req);
    my @lat;
    for my $r (@req) {
        my ($i, $t, $st, $ms, $ids) = @$r;
        $res{status}{$st}++;
        if ($st == 0) {
            $res{errors}++;
            next;
        }
        push @lat, $ms;
        if ($st >= 200 && $st < 300) {
            $res{ok}++;
            push @{ $res{ids} }, @$ids;
        } elsif ($st == 503) {
            $res{s503}++;
        } else {
            $res{other}++;
        }
    }
    @lat = sort { $a <=> $b } @lat;
    $res{latencies} = \@lat;
    my $pct = sub { @lat ? $lat[ int($_[0] * $#lat) ] : 0 };
    $res{p50} = $pct->(0.50);
    $res{p99} = $pct->(0.99);
    $res{max} = @lat ? $lat[-1] : 0;
    $res{duration} = @req ? $req[-1][1] + $req[-1][3] / 1000 : 0;
    return \%res;
}

# A one-line summary for diag/note.
sub summary {
    my ($class, $r) = @_;
    return sprintf 'sent %d (skipped %d): 2xx %d, 503 %d, other %d, '
        . 'no answer %d; p50 %.1f ms, p99 %.1f ms, max %.1f ms',
        @$r{qw(sent skipped ok s503 other errors p50 p99 max)};
}

# ---------------------------------------------------------------- child

# One process, non-blocking: request i goes out when due on an idle
# keep-alive connection, or on a new one while fewer than `concurrency`
# are open; otherwise it waits for one (late).
sub _run {
    my ($self) = @_;
    open my $out, '>', "$self->{dir}/requests.jsonl" or die "requests: $!";
    $out->autoflush(1);
    my $parent = getppid();
    my ($t0, $rate, $total) = @$self{qw(t0 rate total)};
    my $stop_issuing = $t0 + $self->{seconds} + 0.5;
    my $next = 0;
    my (@idle, %busy);
    my $open = 0;

    my $record = sub {
        my ($c, $st, $text) = @_;
        my @ids = $st >= 200 && $st < 300
            ? ($text =~ /"eventId"\s*:\s*"([^"]*)"/g) : ();
        print {$out} $JSON->encode([ $c->{i}, $c->{t} - $t0, $st + 0,
            sprintf('%.3f', 1000 * (time - $c->{t})) + 0, \@ids ]), "\n";
    };
    my $drop = sub {
        my ($c) = @_;
        delete $busy{ fileno $c->{fh} };
        @idle = grep { $_ != $c } @idle;
        close $c->{fh};
        $open--;
    };

    while (1) {
        POSIX::_exit(0) if getppid() != $parent;
        my $now = time;

        # behind schedule past the end (slow answers): the rest is not
        # sent at all, so the load ends on time whatever the server does
        $next = $total if $now > $stop_issuing;
        while ($next < $total && $t0 + $next / $rate <= $now) {
            my $c = shift @idle;
            if (!$c && $open < $self->{concurrency}) {
                my $fh = IO::Socket::IP->new(PeerHost => $self->{host},
                                             PeerPort => $self->{port},
                                             Proto => 'tcp', Timeout => 2);
                unless ($fh) {
                    # no connection: that request gets no answer
                    $record->({ i => $next++, t => $now }, 0, '');
                    next;
                }
                $fh->blocking(0);
                $open++;
                $c = { fh => $fh };
            }
            last unless $c;
            my $body = ref $self->{body} eq 'CODE'
                ? $self->{body}->($next) : $self->{body};
            utf8::encode($body) if utf8::is_utf8($body);
            @$c{qw(i t in)} = ($next++, time, '');
            $c->{out} = $self->_head(length $body) . $body;
            $c->{deadline} = $c->{t} + $self->{timeout};
            $busy{ fileno $c->{fh} } = $c;
        }
        last if $next >= $total && !%busy;

        my $rsel = IO::Select->new(map { $_->{fh} } values %busy, @idle);
        my $wsel = IO::Select->new(map { $_->{fh} }
                                   grep { length $_->{out} } values %busy);
        my $wake = $now + 0.2;
        $wake = $t0 + $next / $rate
            if $next < $total && $t0 + $next / $rate < $wake;
        for (values %busy) { $wake = $_->{deadline} if $_->{deadline} < $wake }
        my $wait = $wake - time;
        my ($r, $w) = IO::Select->select($rsel, $wsel, undef,
                                         $wait > 0 ? $wait : 0);

        for my $fh (@{ $w // [] }) {
            my $c = $busy{ fileno $fh } or next;
            my $n = syswrite $fh, $c->{out};
            if (defined $n) {
                substr($c->{out}, 0, $n, '');
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                $record->($c, 0, '');
                $drop->($c);
            }
        }
        for my $fh (@{ $r // [] }) {
            next unless defined fileno $fh;     # dropped this round
            my $c = $busy{ fileno $fh };
            unless ($c) {
                # an idle connection readable: the server closed it
                ($c) = grep { $_->{fh} == $fh } @idle;
                $drop->($c) if $c;
                next;
            }
            my $n = sysread $fh, $c->{in}, 65536, length $c->{in};
            next if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK
                                    || $! == EINTR);
            my ($done, $st, $text, $close) = _parse($c->{in}, !$n);
            next unless $done;
            $record->($c, $st, $text);
            if ($close || !$n) {
                $drop->($c);
            } else {
                delete $busy{ fileno $fh };
                push @idle, $c;
            }
        }
        $now = time;
        for my $c (grep { $_->{deadline} <= $now } values %busy) {
            $record->($c, 0, '');
            $drop->($c);
        }
    }
    close $_->{fh} for @idle;
}

sub _head {
    my ($self, $len) = @_;
    my $req = "$self->{method} $self->{path} HTTP/1.1\r\nHost: localhost\r\n";
    my %h = %{ $self->{headers} // {} };
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    return $req . "Content-Length: $len\r\n\r\n";
}

# An answer in $buf (eof: the connection is closed): (done, status or 0,
# body, close?); not done while more is to come.
sub _parse {
    my ($buf, $eof) = @_;
    my $end = index $buf, "\r\n\r\n";
    if ($end < 0) {
        return $eof ? (1, 0, '', 1) : (0);
    }
    my $head = substr $buf, 0, $end + 2;
    my $rest = substr $buf, $end + 4;
    my ($st) = $head =~ m{^HTTP/1\.[01] (\d{3})} or return (1, 0, '', 1);
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    my $chunked = $head =~ /^Transfer-Encoding:\s*chunked/mi;
    my $close = $head =~ /^Connection:\s*close/mi || $head =~ m{^HTTP/1\.0};
    $len = 0 if !defined $len && !$chunked && ($st == 204 || $st == 304);
    if (defined $len) {
        return (1, $st, substr($rest, 0, $len), $close)
            if length($rest) >= $len;
        return $eof ? (1, 0, '', 1) : (0);
    }
    if ($chunked) {
        if ($rest =~ /(?:^|\r\n)0\r\n\r\n/) {
            my $text = '';
            while ($rest =~ s/^([0-9a-fA-F]+)\r\n//) {
                my $n = hex $1;
                last if $n == 0;
                $text .= substr($rest, 0, $n, '');
                $rest =~ s/^\r\n//;
            }
            return (1, $st, $text, $close);
        }
        return $eof ? (1, 0, '', 1) : (0);
    }
    # delimited by the close
    return $eof ? (1, $st, $rest, 1) : (0);
}

1;
