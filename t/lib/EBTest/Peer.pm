package EBTest::Peer;

# A real HTTP/1.1 server for ebd's http and cloudevents targets to
# deliver to: a forked child on 127.0.0.1 (a free port), non-blocking,
# any number of keep-alive connections, Content-Length and chunked
# request bodies. Every request is recorded as one JSON line in a file
# the test reads back with requests(); what the peer answers is scripted
# while it runs through a control file it re-reads for every request.
#
#   my $peer = EBTest::Peer->start(control => { ... });
#   $peer->url('/hook')                  http://127.0.0.1:PORT/hook
#   $peer->control({ ... })              new behaviour (resets counters)
#   $peer->requests(path => '/hook')     [ { method, target, path, query,
#                                            headers => { lc name => value },
#                                            body, time, status, conn } ]
#   $peer->token_fetches                 token requests that got a token
#
# Control (every key optional):
#
#   { default => RESPONSE,               200 when absent
#     paths   => { '/p' => RESPONSE },   by path (without the query)
#     dingtalk => { path => '/robot/send', access_token => T,
#                   secret => SEC },    a custom robot: see _answer
#     oauth   => { token_path => '/token', client_id => ID,
#                  client_secret => SECRET, expires_in => SECONDS,
#                  protect => [ '/p', ... ], revoke => N,
#                  token_delay => SECONDS, status => CODE } }
#
#   RESPONSE: a status (503), { status, delay (s), retry_after (text),
#   retry_after_in (s: an HTTP-date that far ahead), body, headers }, or { seq => [ RESPONSE, ... ] }: the n-th
#   request to that path gets the n-th (the last one from then on).
#
# OAuth2: the token path answers client-credentials requests (form
# grant_type=client_credentials, client_id, client_secret, in the body
# or, for GET and DELETE, the query; the client's id and secret may come
# as HTTP Basic instead, which then wins) with a new
# token valid for expires_in seconds; only the newest unexpired token is
# accepted on protected paths (401 otherwise, before any scripted
# answer). Raising "revoke" invalidates the current token.
#
# The child stops on SIGTERM, and on its own when the test process is
# gone; EBTest's cleanup stops it at exit.

use strict;
use warnings;
use IO::Socket::IP;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Fcntl qw(:flock);
use File::Temp qw(tempdir);
use JSON::PP;
use MIME::Base64 ();
use Time::HiRes qw(time sleep);
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64);

my $JSON = JSON::PP->new->utf8->canonical;

sub start {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    $self->{dir} //= tempdir('eb-peer-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{log} = "$self->{dir}/requests.jsonl";
    $self->{ctl} = "$self->{dir}/control.json";
    $self->{state} = "$self->{dir}/state.json";
    open my $fh, '>', $self->{log} or die "$self->{log}: $!";
    close $fh;
    $self->control($o{control} // {});

    # listen before forking: the port is ours when start() returns
    my $ls;
    for (1 .. 20) {
        $self->{port} = EBTest::free_port();
        $ls = IO::Socket::IP->new(LocalHost => '127.0.0.1',
                                  LocalPort => $self->{port}, Proto => 'tcp',
                                  Listen => 128, ReuseAddr => 1) and last;
    }
    die "peer: cannot listen: $@" unless $ls;

    my $parent = $$;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(0) };
        $SIG{PIPE} = 'IGNORE';
        eval { $self->_serve($ls, $parent) };
        print STDERR "peer: $@" if $@;
        POSIX::_exit(0);
    }
    close $ls;
    $self->{pid} = $pid;
    EBTest::register($self);
    return $self;
}

sub port { $_[0]{port} }
sub url { "http://127.0.0.1:$_[0]{port}" . ($_[1] // '/') }

sub control {
    my ($self, $c) = @_;
    open my $fh, '>', "$self->{ctl}.tmp" or die "$self->{ctl}: $!";
    print {$fh} $JSON->encode($c);
    close $fh;
    rename "$self->{ctl}.tmp", $self->{ctl} or die "rename: $!";
}

# requests(path => P, method => M): the recorded requests, oldest first
sub requests {
    my ($self, %f) = @_;
    open my $fh, '<', $self->{log} or return [];
    my @r;
    while (my $line = <$fh>) {
        next unless $line =~ /\n\z/;     # a line being written
        my $r = eval { $JSON->decode($line) } or next;
        next if defined $f{path} && $r->{path} ne $f{path};
        next if defined $f{method} && $r->{method} ne $f{method};
        push @r, $r;
    }
    return \@r;
}

# The event ids of the requests answered 2xx, counted: { id => N }. The
# id is the CloudEvent's own when the body is one (http targets send the
# event), else the ce-id header (cloudevents targets in binary mode).
sub delivered_ids {
    my ($self, %f) = @_;
    my %d;
    for my $r (@{ $self->requests(%f) }) {
        next unless $r->{status} >= 200 && $r->{status} < 300;
        my $e = eval { $JSON->decode($r->{body} // '') };
        my $id = ref $e eq 'HASH' && defined $e->{specversion} ? $e->{id}
                                                               : undef;
        $id //= $r->{headers}{'ce-id'};
        $d{$id}++ if defined $id;
    }
    return \%d;
}

sub token_fetches {
    my ($self) = @_;
    my $path = $self->{oauth_path} // '/token';
    return scalar grep { $_->{status} == 200 }
        @{ $self->requests(path => $path) };
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    my $end = time + 5;
    while (time < $end) {
        my $r = waitpid $pid, WNOHANG;
        return if $r == $pid || $r < 0;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

# --- the child ---------------------------------------------------------------

sub _serve {
    my ($self, $ls, $parent) = @_;
    $ls->blocking(0);
    my $sel = IO::Select->new($ls);
    my %c;                       # fileno => connection
    my ($nconn, $nreq) = (0, 0);
    my %st = (ctl_text => '', counters => {}, token => undef,
              token_exp => 0, tokens => 0, revoke => 0);
    open my $log, '>>', $self->{log} or die "$self->{log}: $!";
    $log->autoflush(1);

    while (1) {
        POSIX::_exit(0) if getppid() != $parent;

        my $now = time;
        my $timeout = 0.2;
        for my $k (values %c) {
            if ($k->{due}) {
                my $t = $k->{due} - $now;
                $timeout = $t if $t < $timeout;
            }
        }
        $timeout = 0 if $timeout < 0;

        my $wsel = IO::Select->new(map { $_->{sock} }
                                   grep { length $_->{out} } values %c);
        my ($r, $w) = IO::Select->select($sel, $wsel, undef, $timeout);

        for my $s (@{ $r // [] }) {
            if ($s == $ls) {
                while (my $ns = $ls->accept) {
                    $ns->blocking(0);
                    $c{fileno $ns} = { sock => $ns, in => '', out => '',
                                       id => ++$nconn };
                    $sel->add($ns);
                }
                next;
            }
            my $k = $c{fileno $s} or next;
            my $n = sysread($s, my $buf, 65536);
            if (defined $n && $n > 0) {
                $k->{in} .= $buf;
            } elsif (defined $n || ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR)) {
                $k->{eof} = 1;
            }
        }

        $now = time;
        for my $k (values %c) {
            # a delayed answer that is due
            if ($k->{due} && $now >= $k->{due}) {
                $k->{out} .= delete $k->{pending};
                delete $k->{due};
            }
            # the next request of the connection, one at a time
            while (!$k->{due} && !$k->{close_after}) {
                my $req = _parse($k) // last;
                $req->{conn} = $k->{id};
                $req->{n} = ++$nreq;
                my ($resp, $delay) = $self->_answer(\%st, $req);
                print {$log} $JSON->encode($req), "\n";
                $k->{close_after} = 1
                    if lc($req->{headers}{connection} // '') eq 'close';
                if ($delay) {
                    $k->{pending} = $resp;
                    $k->{due} = $now + $delay;
                } else {
                    $k->{out} .= $resp;
                }
            }
        }

        for my $k (values %c) {
            if (length $k->{out}) {
                my $n = syswrite($k->{sock}, $k->{out});
                if (defined $n) {
                    substr($k->{out}, 0, $n, '');
                } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                    $k->{eof} = 1;
                    $k->{out} = '';
                }
            }
            if (($k->{eof} && !$k->{due})
                || ($k->{close_after} && !$k->{due} && !length $k->{out}))
            {
                $sel->remove($k->{sock});
                delete $c{fileno $k->{sock}};
                close $k->{sock};
            }
        }
    }
}

# One complete request off the connection's input, or undef.
sub _parse {
    my ($k) = @_;
    my $end = index($k->{in}, "\r\n\r\n");
    return undef if $end < 0;
    my $head = substr($k->{in}, 0, $end);
    my @lines = split /\r\n/, $head;
    my $first = shift @lines // '';
    my ($method, $target) = $first =~ m{^(\S+) (\S+) HTTP/1\.[01]$}
        or do { $k->{eof} = 1; return undef };
    my (%h);
    for (@lines) {
        my ($n, $v) = /^([^:]+):[ \t]*(.*?)[ \t]*$/ or next;
        $n = lc $n;
        $h{$n} = exists $h{$n} ? "$h{$n}, $v" : $v;
    }
    my $rest = substr($k->{in}, $end + 4);
    my ($body, $used);
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        $body = '';
        my $p = 0;
        while (1) {
            my $le = index($rest, "\r\n", $p);
            return _continue($k, \%h) if $le < 0;
            my ($size) = substr($rest, $p, $le - $p) =~ /^([0-9a-fA-F]+)/;
            return do { $k->{eof} = 1; undef } unless defined $size;
            $size = hex $size;
            $p = $le + 2;
            if ($size == 0) {
                # trailers up to an empty line
                my $te = index($rest, "\r\n\r\n", $p - 2);
                return _continue($k, \%h) if $te < 0;
                $used = $te + 4;
                last;
            }
            return _continue($k, \%h) if length($rest) < $p + $size + 2;
            $body .= substr($rest, $p, $size);
            $p += $size + 2;
        }
    } else {
        my $len = $h{'content-length'} // 0;
        return _continue($k, \%h) if length($rest) < $len;
        $body = substr($rest, 0, $len);
        $used = $len;
    }
    $k->{in} = substr($rest, $used);
    delete $k->{continued};
    my ($path, $query) = split /\?/, $target, 2;
    return { method => $method, target => $target, path => $path,
             query => $query // '', headers => \%h, body => $body,
             time => time };
}

sub _continue {
    my ($k, $h) = @_;
    if (lc($h->{expect} // '') eq '100-continue' && !$k->{continued}) {
        $k->{out} .= "HTTP/1.1 100 Continue\r\n\r\n";
        $k->{continued} = 1;
    }
    return undef;
}

my %REASON = (200 => 'OK', 201 => 'Created', 202 => 'Accepted',
              204 => 'No Content', 301 => 'Moved Permanently', 302 => 'Found',
              400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
              404 => 'Not Found', 408 => 'Request Timeout',
              429 => 'Too Many Requests', 500 => 'Internal Server Error',
              502 => 'Bad Gateway', 503 => 'Service Unavailable');

sub _response {
    my ($status, %o) = @_;
    my $body = $o{body} // '';
    utf8::encode($body) if utf8::is_utf8($body);
    my $r = "HTTP/1.1 $status " . ($REASON{$status} // 'Status') . "\r\n"
        . "Content-Length: " . length($body) . "\r\n";
    $r .= "Content-Type: $o{type}\r\n" if $o{type};
    $r .= "Retry-After: $o{retry_after}\r\n" if defined $o{retry_after};
    for my $n (sort keys %{ $o{headers} // {} }) {
        $r .= "$n: $o{headers}{$n}\r\n";
    }
    return "$r\r\n$body";
}

sub _form {
    my ($s) = @_;
    my %f;
    for (split /&/, $s // '') {
        my ($k, $v) = split /=/, $_, 2;
        for ($k, $v) { $_ //= ''; tr/+/ /; s/%([0-9a-fA-F]{2})/chr hex $1/ge }
        $f{$k} = $v;
    }
    return \%f;
}

# (the response text, its delay) for a request; notes the status in it
sub _answer {
    my ($self, $st, $req) = @_;
    my $text = '';
    if (open my $fh, '<', $self->{ctl}) { local $/; $text = <$fh> }
    if ($text ne $st->{ctl_text}) {
        $st->{ctl_text} = $text;
        $st->{ctl} = eval { $JSON->decode($text) } // {};
        $st->{counters} = {};
    }
    my $ctl = $st->{ctl};
    my $now = time;

    if (my $o = $ctl->{oauth}) {
        if (($o->{revoke} // 0) != $st->{revoke}) {
            $st->{revoke} = $o->{revoke} // 0;
            $st->{token} = undef;
        }
        if ($req->{path} eq ($o->{token_path} // '/token')) {
            my $f = _form($req->{method} =~ /^(GET|DELETE)$/ ? $req->{query} : $req->{body});
            # client_secret_basic (RFC 6749 2.3.1): the credentials
            # form-encoded, then base64 in an Authorization: Basic
            if (($req->{headers}{authorization} // '') =~ /^Basic\s+(\S+)$/) {
                my ($id, $secret) = split /:/, MIME::Base64::decode_base64($1), 2;
                @$f{qw(client_id client_secret)} = @{ _form("i=$id&s=" . ($secret // '')) }{qw(i s)};
            }
            if (($f->{grant_type} // '') ne 'client_credentials'
                || ($f->{client_id} // '') ne ($o->{client_id} // '')
                || ($f->{client_secret} // '') ne ($o->{client_secret} // ''))
            {
                $req->{status} = 401;
                return (_response(401, type => 'application/json',
                                  body => '{"error":"invalid_client"}'), 0);
            }
            my $code = $o->{status} // 200;
            if ($code != 200) {
                $req->{status} = $code;
                return (_response($code, body => 'token endpoint down'), 0);
            }
            $st->{tokens}++;
            $st->{token} = sprintf('tok%d-%08x', $st->{tokens}, int(rand(2**32)));
            my $exp = $o->{expires_in} // 3600;
            $st->{token_exp} = $now + $exp;
            $req->{status} = 200;
            $req->{issued} = $st->{token};
            return (_response(200, type => 'application/json',
                              body => $JSON->encode({
                                  access_token => $st->{token},
                                  token_type => 'Bearer',
                                  expires_in => $exp,
                                  %{ $o->{extra} // {} } })),
                    $o->{token_delay} // 0);
        }
        if (grep { $_ eq $req->{path} } @{ $o->{protect} // [] }) {
            my $auth = $req->{headers}{authorization} // '';
            unless (defined $st->{token} && $auth eq "Bearer $st->{token}"
                    && $now < $st->{token_exp})
            {
                $req->{status} = 401;
                return (_response(401, headers => { 'WWW-Authenticate' =>
                                  'Bearer error="invalid_token"' }), 0);
            }
        }
    }

    # a DingTalk custom robot: the signature checked as DingTalk does
    # (timestamp in ms, at most an hour off; sign = base64 of
    # HMAC-SHA256(secret, timestamp "\n" secret), URL-encoded), then
    # errcode 0 unless the path's scripted answer says otherwise
    if (my $dt = $ctl->{dingtalk}) {
        if ($req->{path} eq ($dt->{path} // '/robot/send')) {
            my $q = _form($req->{query});
            my $ts = $q->{timestamp} // '';
            my $want = encode_base64(hmac_sha256("$ts\n$dt->{secret}",
                                                 $dt->{secret}), '');
            my $bad = ($q->{access_token} // '') ne ($dt->{access_token} // '')
                ? [ 300001, 'token is not exist' ]
                : $ts !~ /^\d{13}$/ || abs($ts / 1000 - $now) > 3600
                ? [ 310000, 'sign not match, timestamp is invalid' ]
                : ($q->{sign} // '') ne $want
                ? [ 310000, 'sign not match' ] : undef;
            $req->{sign_ok} = $bad ? 0 : 1;
            if ($bad) {
                $req->{status} = 200;
                return (_response(200, type => 'application/json',
                                  body => $JSON->encode({
                                      errcode => $bad->[0],
                                      errmsg => $bad->[1] })), 0);
            }
            unless ($ctl->{paths}{$req->{path}}) {
                $req->{status} = 200;
                return (_response(200, type => 'application/json',
                                  body => '{"errcode":0,"errmsg":"ok"}'), 0);
            }
        }
    }

    my $spec = $ctl->{paths}{$req->{path}} // $ctl->{default} // 200;
    if (ref $spec eq 'HASH' && $spec->{seq}) {
        my $i = $st->{counters}{$req->{path}}++;
        my @seq = @{ $spec->{seq} };
        $spec = $i < @seq ? $seq[$i] : $seq[-1];
    }
    $spec = { status => $spec } unless ref $spec;
    my $status = $spec->{status} // 200;
    my $ra = $spec->{retry_after};
    $ra = POSIX::strftime('%a, %d %b %Y %H:%M:%S GMT',
                          gmtime(int($now) + $spec->{retry_after_in}))
        if defined $spec->{retry_after_in};
    $req->{status} = $status;
    return (_response($status, body => $spec->{body} // '',
                      type => $spec->{type},
                      retry_after => $ra,
                      headers => $spec->{headers}),
            $spec->{delay} // 0);
}

1;
