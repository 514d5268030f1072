package EBTest::Blackhole;

# A TCP proxy on 127.0.0.1 that can turn into a black hole: the way a
# peer behind a dead NAT entry, a pulled cable or a frozen VM looks to a
# client - the connection stays open, nothing comes back, no FIN, no RST.
#
#   my $p = EBTest::Blackhole->start(to => '127.0.0.1:6379');
#   $p->port / addr           where clients connect ("127.0.0.1:PORT")
#   $p->blackhole             every connection open NOW stops being
#                             forwarded both ways but stays open; later
#                             connections are forwarded normally (returns
#                             the number held so far)
#   $p->blackhole(new => 1)   the same, and connections made from now on
#                             are accepted but held as well (a peer that
#                             completes the handshake, then says nothing)
#   $p->heal                  new connections are forwarded again (the
#                             held ones stay held)
#   $p->accepted              connections accepted so far
#   $p->held                  connections black-holed so far
#   $p->retarget($addr)       later connections go to $addr
#   $p->stop
#
# A forked child, non-blocking with IO::Select; the test talks to it over
# a pipe (each command is acknowledged once done, so when blackhole()
# returns the proxy no longer forwards a byte of the old connections).
# It stops on SIGTERM, and on its own when the test process is gone.

use strict;
use warnings;
use IO::Socket::IP;
use IO::Select;
use IO::Handle;
use POSIX qw(:sys_wait_h);
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);

sub start {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    die "EBTest::Blackhole: to => HOST:PORT" unless ($o{to} // '') =~ /:\d+$/;
    $self->{dir} //= tempdir('eb-blackhole-XXXXXX', TMPDIR => 1, CLEANUP => 1);

    my $ls;
    for (1 .. 20) {
        $self->{port} = $o{port} // EBTest::free_port();
        $ls = IO::Socket::IP->new(LocalHost => '127.0.0.1',
                                  LocalPort => $self->{port}, Proto => 'tcp',
                                  Listen => 128, ReuseAddr => 1) and last;
    }
    die "blackhole: cannot listen: $@" unless $ls;

    pipe(my $cr, my $cw) or die "pipe: $!";     # commands, test -> proxy
    pipe(my $ar, my $aw) or die "pipe: $!";     # acknowledgements
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $cw;
        close $ar;
        $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(0) };
        $SIG{PIPE} = 'IGNORE';
        eval { $self->_serve($ls, $cr, $aw, $parent) };
        print STDERR "blackhole: $@" if $@;
        POSIX::_exit(0);
    }
    close $ls;
    close $cr;
    close $aw;
    $cw->autoflush(1);
    $self->{pid} = $pid;
    $self->{ctl} = $cw;
    $self->{ack} = $ar;
    EBTest::register($self);
    return $self;
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }

# Sends a command line; returns the child's answer line.
sub _command {
    my ($self, $line) = @_;
    die "blackhole not running" unless $self->{pid};
    print { $self->{ctl} } "$line\n";
    my $sel = IO::Select->new($self->{ack});
    die "blackhole: no answer to '$line'" unless $sel->can_read(10);
    my $ans = readline $self->{ack};
    die "blackhole: no answer to '$line'" unless defined $ans;
    chomp $ans;
    return $ans;
}

sub blackhole {
    my ($self, %o) = @_;
    return $self->_command($o{new} ? 'hole new' : 'hole');
}

sub heal { my ($self) = @_; return $self->_command('heal') }
sub accepted { my ($self) = @_; return (split ' ', $self->_command('stat'))[0] }
sub held { my ($self) = @_; return (split ' ', $self->_command('stat'))[1] }

sub retarget {
    my ($self, $to) = @_;
    $self->{to} = $to;
    return $self->_command("to $to");
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    close $self->{ctl};
    close $self->{ack};
}

# ---------------------------------------------------------------- child

sub _serve {
    my ($self, $ls, $ctl, $ack, $parent) = @_;
    $ack->autoflush(1);
    $ls->blocking(0);
    my $sel = IO::Select->new($ls, $ctl);
    my %c;              # fileno -> { fh, peer (fileno), out, eof }
    my @held;           # black-holed sockets: kept open, never touched
    my ($accepted, $nheld, $hold_new, $to) = (0, 0, 0, $self->{to});
    my $ctlbuf = '';

    my $close = sub {
        for my $fd (@_) {
            my $e = delete $c{$fd} or next;
            $sel->remove($e->{fh});
            close $e->{fh};
        }
    };

    while (1) {
        POSIX::_exit(0) if getppid() != $parent;
        my $wsel = IO::Select->new(map { $_->{fh} }
                                   grep { length $_->{out} } values %c);
        my ($r, $w) = IO::Select->select($sel, $wsel, undef, 0.5);
        for my $fh (@{ $r // [] }) {
            if ($fh == $ls) {
                while (my $cl = $ls->accept) {
                    $accepted++;
                    if ($hold_new) {
                        push @held, $cl;
                        $nheld++;
                        next;
                    }
                    my ($host, $port) = $to =~ /^(.*):(\d+)$/;
                    # non-blocking: a target that never completes the
                    # handshake must not stall the other connections
                    my $up = IO::Socket::IP->new(PeerHost => $host,
                                                 PeerPort => $port,
                                                 Proto => 'tcp',
                                                 Blocking => 0);
                    unless ($up) { close $cl; next; }
                    $cl->blocking(0);
                    my ($a, $b) = (fileno $cl, fileno $up);
                    $c{$a} = { fh => $cl, peer => $b, out => '', pair => $a };
                    $c{$b} = { fh => $up, peer => $a, out => '', pair => $a };
                    $sel->add($cl, $up);
                }
                next;
            }
            if ($fh == $ctl) {
                my $n = sysread $ctl, $ctlbuf, 4096, length $ctlbuf;
                POSIX::_exit(0) if defined $n && $n == 0;   # test gone
                while ($ctlbuf =~ s/^(.*)\n//) {
                    my $cmd = $1;
                    if ($cmd =~ /^hole( new)?$/) {
                        # keep the sockets, forget them: nothing more is
                        # read, written or closed on them
                        my %client;
                        for my $e (values %c) {
                            $sel->remove($e->{fh});
                            push @held, $e->{fh};
                            $client{ $e->{pair} }++;
                        }
                        $nheld += keys %client;
                        %c = ();
                        $hold_new = 1 if $1;
                        print {$ack} "$nheld\n";
                    } elsif ($cmd eq 'heal') {
                        $hold_new = 0;
                        print {$ack} "ok\n";
                    } elsif ($cmd eq 'stat') {
                        print {$ack} "$accepted $nheld\n";
                    } elsif ($cmd =~ /^to (\S+:\d+)$/) {
                        $to = $1;
                        print {$ack} "ok\n";
                    } else {
                        print {$ack} "unknown\n";
                    }
                }
                next;
            }
            # (closed with its peer earlier in this round: no fileno)
            my $fd = fileno $fh;
            my $e = defined $fd && $c{$fd} or next;
            my $p = $c{ $e->{peer} };
            my $buf;
            my $n = sysread $fh, $buf, 65536;
            next if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK
                                    || $! == EINTR);
            if (!$n) {
                # EOF or error: pass the close on once the data is out
                $sel->remove($fh);
                $e->{eof} = 1;
                if (!$p || !length $p->{out}) {
                    $close->(fileno $fh, $e->{peer});
                } else {
                    $p->{close_after} = 1;
                }
                next;
            }
            $p->{out} .= $buf if $p;
        }
        for my $fh (@{ $w // [] }) {
            my $fd = fileno $fh;
            my $e = defined $fd && $c{$fd} or next;
            my $n = syswrite $fh, $e->{out};
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $close->(fileno $fh, $e->{peer});
                next;
            }
            substr($e->{out}, 0, $n, '');
            $close->(fileno $fh, $e->{peer})
                if !length $e->{out} && $e->{close_after};
        }
    }
}

1;
