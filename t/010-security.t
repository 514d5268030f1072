#!/usr/bin/perl
# The checks done before any of the body is read: method, client address
# (IPv4, IPv6, IPv4-mapped), Referer host, token, and how server-level
# settings reach locations. Every rejection is answered with a JSON body
# {"errorCode","errorMessage"} and appends nothing to the bus's stream.
use strict;
use warnings;
use Test::More;
use EBTest;
use IO::Socket::IP;
use Time::HiRes ();

my $KEY = 'eb:{sec}:events';

my $redis = EBTest::Redis->start;

# extra loopback ports: IPv4-mapped IPv6 listener, inheritance servers
my $p_mapped = EBTest::free_port();
my $p_inh1 = EBTest::free_port();
my $p_inh2 = EBTest::free_port();

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<"EOF");
    eventbridge_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /default { eventbridge_source s.default bus=sec; }

        location /put {
            eventbridge_source s.put bus=sec;
            eventbridge_allow_methods post Put;
        }

        location /ip/single-ok {
            eventbridge_source s.ip bus=sec;
            eventbridge_allow_ips 127.0.0.1;
        }
        location /ip/single-other {
            eventbridge_source s.ip bus=sec;
            eventbridge_allow_ips 127.0.0.2;
        }
        location /ip/cidr-ok {
            eventbridge_source s.ip bus=sec;
            eventbridge_allow_ips 10.0.0.0/8 127.0.0.0/8;
        }
        location /ip/cidr-narrow-ok {
            eventbridge_source s.ip bus=sec;
            eventbridge_allow_ips 127.0.0.0/31;
        }
        location /ip/cidr-10 {
            eventbridge_source s.ip bus=sec;
            eventbridge_allow_ips 10.0.0.0/8;
        }
        location /ip/cidr-neighbour {
            eventbridge_source s.ip bus=sec;
            eventbridge_allow_ips 127.0.0.2/31 126.0.0.0/8 128.0.0.0/8;
        }
        location /ip/v6-only {
            eventbridge_source s.ip bus=sec;
            eventbridge_allow_ips ::1 ::ffff:127.0.0.1 2001:db8::/32;
        }

        location /ref {
            eventbridge_source s.ref bus=sec;
            eventbridge_allow_referers example.com *.example.org .example.net none;
        }
        location /ref-strict {
            eventbridge_source s.ref bus=sec;
            eventbridge_allow_referers example.com;
        }

        location /tok {
            eventbridge_source s.tok bus=sec;
            eventbridge_token s3cret;
        }
        location /tok-enc {
            eventbridge_source s.tok bus=sec;
            eventbridge_token "p\@ss+w/rd";
        }

        location /status { eventbridge_status; }
    }

    server {
        listen [::1]:%%PORT6%%;

        location /v6/one { eventbridge_source s.v6 bus=sec; eventbridge_allow_ips ::1; }
        location /v6/range { eventbridge_source s.v6 bus=sec; eventbridge_allow_ips ::/64; }
        location /v6/doc { eventbridge_source s.v6 bus=sec; eventbridge_allow_ips 2001:db8::/32; }
        location /v6/v4rules { eventbridge_source s.v6 bus=sec; eventbridge_allow_ips 127.0.0.1 0.0.0.0/0; }
        location /v6/other { eventbridge_source s.v6 bus=sec; eventbridge_allow_ips ::2; }
    }

    server {
        listen [::ffff:127.0.0.1]:$p_mapped ipv6only=off;

        location /m/v4 { eventbridge_source s.m bus=sec; eventbridge_allow_ips 127.0.0.0/8; }
        location /m/v4-single { eventbridge_source s.m bus=sec; eventbridge_allow_ips 127.0.0.1; }
        location /m/v4-10 { eventbridge_source s.m bus=sec; eventbridge_allow_ips 10.0.0.0/8; }
        location /m/v6-loop { eventbridge_source s.m bus=sec; eventbridge_allow_ips ::1; }
    }

    server {
        listen 127.0.0.1:$p_inh1;
        eventbridge_allow_ips 10.0.0.0/8;

        location /inherit { eventbridge_source s.inh bus=sec; }
        location /override {
            eventbridge_source s.inh bus=sec;
            eventbridge_allow_ips 127.0.0.1;
        }
    }

    server {
        listen 127.0.0.1:$p_inh2;
        eventbridge_allow_methods PUT;
        eventbridge_allow_referers example.com;
        eventbridge_token t0k;

        location /inherit { eventbridge_source s.inh bus=sec; }
        location /override {
            eventbridge_source s.inh bus=sec;
            eventbridge_allow_methods POST;
            eventbridge_allow_referers none;
        }
        location /outer {
            eventbridge_token outer;
            location /outer/inner { eventbridge_source s.inh bus=sec; }
        }
    }
EOF
$ngx->start;

our $port = $ngx->port;

sub xlen { my $n = $redis->xlen($KEY); return ref $n ? 0 : $n // 0 }

sub last_event {
    my $r = $redis->cmd('XREVRANGE', $KEY, '+', '-', 'COUNT', 1);
    return unless ref $r eq 'ARRAY' && @$r;
    my %f = @{ $r->[0][1] };
    return ($f{event}, EBTest::json_decode($f{event}));
}

# eventbridge_events_rejected_total by reason, read by Prometheus's parser
sub metrics {
    my $m = $ngx->metrics;
    return { map { /^eventbridge_events_rejected_total\{reason="(\w+)"\}$/
                   ? ($1 => $m->{$_}) : () } keys %$m };
}

# A request that must be refused: status, errorCode, JSON body of exactly
# {"errorCode","errorMessage"}, nothing appended.
sub refused {
    my ($name, $status, $code, %req) = @_;
    my $before = xlen();
    my $r = EBTest::http(port => $port, method => 'POST', body => '{"x":1}',
                         headers => ['Content-Type' => 'application/json'],
                         %req);
    subtest "$name -> $status $code" => sub {
        is($r->{status}, $status, 'status') or diag $r->{raw} // $r->{error};
        like($r->{headers}{'content-type'} // '', qr{^application/json},
             'JSON content type');
        my $j = $r->{json};
        is(ref $j, 'HASH', 'body is a JSON object') or return;
        is_deeply([sort keys %$j], ['errorCode', 'errorMessage'],
                  'exactly errorCode and errorMessage');
        is($j->{errorCode}, $code, 'errorCode');
        ok(defined $j->{errorMessage} && length $j->{errorMessage},
           'non-empty errorMessage');
        is(xlen(), $before, 'nothing appended');
    };
    return $r;
}

# A request that must be taken: 200, one event appended, the answered id.
sub taken {
    my ($name, %req) = @_;
    my $before = xlen();
    my $r = EBTest::http(port => $port, method => 'POST', body => '{"x":1}',
                         headers => ['Content-Type' => 'application/json'],
                         %req);
    my ($raw, $ev);
    subtest "$name -> 200" => sub {
        is($r->{status}, 200, 'status') or diag $r->{raw} // $r->{error};
        is(xlen(), $before + 1, 'one event appended');
        ($raw, $ev) = last_event();
        is($ev && $ev->{id}, $r->{json} && $r->{json}{eventId},
           'stored event has the answered id');
    };
    return ($r, $ev, $raw);
}

my $m0 = metrics();

# --- methods ---------------------------------------------------------------

{
    my $r = refused('GET on default location', 405, 'MethodNotAllowed',
                    method => 'GET', path => '/default', body => undef,
                    headers => []);
    is($r->{headers}{allow}, 'POST', 'default Allow: POST');
    like($r->{json}{errorMessage} // '', qr/GET/, 'message names the method');

    $r = refused('PUT on default location', 405, 'MethodNotAllowed',
                 method => 'PUT', path => '/default');
    is($r->{headers}{allow}, 'POST', 'Allow: POST for PUT');

    $r = refused('PATCH with a body on default location', 405,
                 'MethodNotAllowed', method => 'PATCH', path => '/default',
                 body => 'x' x 5000, headers => ['Content-Type' => 'text/plain']);
    is($r->{headers}{allow}, 'POST', 'Allow: POST for PATCH');

    $r = refused('DELETE on default location', 405, 'MethodNotAllowed',
                 method => 'DELETE', path => '/default', body => undef,
                 headers => []);

    $r = refused('unknown method on default location', 405,
                 'MethodNotAllowed', method => 'PROPFIND', path => '/default');

    taken('POST on default location', path => '/default');

    # eventbridge_allow_methods post Put (case-insensitive names)
    $r = refused('GET on POST/PUT location', 405, 'MethodNotAllowed',
                 method => 'GET', path => '/put', body => undef, headers => []);
    my @allow = split /\s*,\s*/, $r->{headers}{allow} // '';
    is_deeply([sort @allow], ['POST', 'PUT'], 'Allow lists POST and PUT');

    refused('DELETE on POST/PUT location', 405, 'MethodNotAllowed',
            method => 'DELETE', path => '/put');

    my (undef, $ev) = taken('PUT on POST/PUT location', method => 'PUT',
                            path => '/put');
    is($ev && $ev->{data}{httpMethod}, 'PUT', 'stored httpMethod PUT');
    taken('POST on POST/PUT location', path => '/put');
}

# --- client addresses --------------------------------------------------------

{
    taken('127.0.0.1 with allow_ips 127.0.0.1', path => '/ip/single-ok');
    my $r = refused('127.0.0.1 with allow_ips 127.0.0.2', 403,
                    'AddressNotAllowed', path => '/ip/single-other');
    like($r->{json}{errorMessage} // '', qr/127\.0\.0\.1/,
         'message names the client address');
    taken('127.0.0.1 within 127.0.0.0/8', path => '/ip/cidr-ok');
    taken('127.0.0.1 within 127.0.0.0/31', path => '/ip/cidr-narrow-ok');
    refused('127.0.0.1 with 10.0.0.0/8 only', 403, 'AddressNotAllowed',
            path => '/ip/cidr-10');
    refused('127.0.0.1 outside neighbouring ranges', 403, 'AddressNotAllowed',
            path => '/ip/cidr-neighbour');
    refused('IPv4 client against IPv6-only rules', 403, 'AddressNotAllowed',
            path => '/ip/v6-only');
    refused('address check before method-allowed body', 403,
            'AddressNotAllowed', path => '/ip/cidr-10',
            body => 'y' x 20000, headers => ['Content-Type' => 'text/plain']);
}

SKIP: {
    my $p6 = $ngx->{port6};
    skip 'no IPv6 port', 5 unless $p6;

    my %v6 = (host => '::1', port => $p6);
    my (undef, $ev) = taken('::1 with allow_ips ::1', %v6, path => '/v6/one');
    is($ev && $ev->{aliyunpublishaddr}, '::1', 'publish address is ::1');
    taken('::1 within ::/64', %v6, path => '/v6/range');
    refused('::1 with allow_ips 2001:db8::/32', 403, 'AddressNotAllowed', %v6,
            path => '/v6/doc');
    refused('::1 against IPv4 rules only', 403, 'AddressNotAllowed', %v6,
            path => '/v6/v4rules');
    refused('::1 with allow_ips ::2', 403, 'AddressNotAllowed', %v6,
            path => '/v6/other');
}

{
    # IPv4-mapped IPv6 client (::ffff:127.0.0.1): matched by IPv4 entries
    my %m = (host => '::ffff:127.0.0.1', port => $p_mapped);
    taken('::ffff:127.0.0.1 within 127.0.0.0/8', %m, path => '/m/v4');
    taken('::ffff:127.0.0.1 with allow_ips 127.0.0.1', %m,
          path => '/m/v4-single');
    refused('::ffff:127.0.0.1 with 10.0.0.0/8 only', 403, 'AddressNotAllowed',
            %m, path => '/m/v4-10');
    refused('::ffff:127.0.0.1 with allow_ips ::1', 403, 'AddressNotAllowed',
            %m, path => '/m/v6-loop');
}

# --- Referer -----------------------------------------------------------------

{
    my @ok = (
        [ 'no Referer (none)', undef ],
        [ 'exact host', 'http://example.com' ],
        [ 'exact host with path and query', 'https://example.com/a/b?c=d#e' ],
        [ 'exact host, other case', 'http://EXAMPLE.Com/' ],
        [ 'exact host with port', 'http://example.com:8443/hook' ],
        [ 'exact host with userinfo', 'http://user:pw@example.com/' ],
        [ 'exact host with userinfo and port', 'https://u@example.com:1/x' ],
        [ '*.example.org: sub-domain', 'http://a.example.org/' ],
        [ '*.example.org: deeper sub-domain', 'https://a.b.example.org:8080/p' ],
        [ '.example.net: the domain', 'http://example.net' ],
        [ '.example.net: a sub-domain', 'http://www.example.net/x' ],
        [ '.example.net: deeper sub-domain', 'http://a.b.example.net:99/x' ],
    );
    for my $c (@ok) {
        taken("Referer $c->[0]", path => '/ref',
              headers => ['Content-Type' => 'application/json',
                          defined $c->[1] ? (Referer => $c->[1]) : ()]);
    }

    my @bad = (
        [ 'sub-domain of an exact host', 'http://www.example.com/' ],
        [ '*.example.org: the domain itself', 'http://example.org/' ],
        [ '*.example.org: suffix without dot', 'http://badexample.org/' ],
        [ '.example.net: suffix without dot', 'http://evilexample.net/' ],
        [ 'allowed host as a prefix', 'http://example.com.evil.test/' ],
        [ 'allowed host as userinfo', 'http://example.com@evil.test/' ],
        [ 'allowed host and port as userinfo',
          'http://example.com:80@evil.test/' ],
        [ 'allowed host in the path', 'http://evil.test/example.com' ],
        [ 'allowed host in the query', 'http://evil.test/?r=http://example.com' ],
        [ 'allowed host in the fragment', 'http://evil.test#@example.com' ],
        [ 'no scheme', 'example.com' ],
        [ 'unrelated host', 'https://example.io/' ],
    );
    for my $c (@bad) {
        refused("Referer $c->[0]", 403, 'RefererNotAllowed', path => '/ref',
                headers => ['Content-Type' => 'application/json',
                            Referer => $c->[1]]);
    }

    refused('no Referer without none', 403, 'RefererNotAllowed',
            path => '/ref-strict');
    taken('exact Referer on strict list', path => '/ref-strict',
          headers => ['Content-Type' => 'application/json',
                      Referer => 'http://example.com/']);
    refused('wrong Referer on strict list', 403, 'RefererNotAllowed',
            path => '/ref-strict',
            headers => ['Content-Type' => 'application/json',
                        Referer => 'http://example.net/']);
}

# --- token -------------------------------------------------------------------

{
    refused('token missing', 401, 'InvalidToken', path => '/tok');
    refused('token empty', 401, 'InvalidToken', path => '/tok?token=');
    refused('token wrong', 401, 'InvalidToken', path => '/tok?token=wrong');
    refused('token prefix of the secret', 401, 'InvalidToken',
            path => '/tok?token=s3cre');
    refused('secret as prefix of the token', 401, 'InvalidToken',
            path => '/tok?token=s3cretX');
    refused('secret in another argument', 401, 'InvalidToken',
            path => '/tok?mytoken=s3cret');
    refused('secret as a header, not the query', 401, 'InvalidToken',
            path => '/tok',
            headers => ['Content-Type' => 'application/json',
                        'X-Token' => 's3cret']);

    my ($r, $ev, $raw) = taken('right token', path => '/tok?token=s3cret');
    is_deeply($ev && $ev->{data}{queryString}, {},
              'token not in data.queryString');

    ($r, $ev, $raw) = taken('right token among other arguments',
                            path => '/tok?a=1&token=s3cret&b=two');
    is_deeply($ev && $ev->{data}{queryString}, { a => '1', b => 'two' },
              'other arguments kept, token dropped');
    unlike($raw // '', qr/s3cret/, 'secret nowhere in the stored event');

    ($r, $ev, $raw) = taken('right token given twice',
                            path => '/tok?token=s3cret&x=1&token=s3cret');
    is_deeply($ev && $ev->{data}{queryString}, { x => '1' },
              'both token arguments dropped');

    ($r, $ev, $raw) = taken('percent-encoded right token',
                            path => '/tok?token=%73%33%63%72%65%74&k=v');
    is_deeply($ev && $ev->{data}{queryString}, { k => 'v' },
              'encoded token dropped');

    # secret "p@ss+w/rd": '+' in a query is a space, so it must be %2B
    taken('encoded token with reserved characters',
          path => '/tok-enc?token=p%40ss%2Bw%2Frd');
    taken('token with literal @ and / and encoded +',
          path => '/tok-enc?token=p@ss%2Bw/rd');
    refused('literal + decodes to a space', 401, 'InvalidToken',
            path => '/tok-enc?token=p@ss+w/rd');

    # whatever spelling of the argument name is accepted as the token, the
    # secret itself must never be stored
    my $before = xlen();
    $r = EBTest::http(port => $port, path => '/tok?TOKEN=s3cret&z=1',
                      headers => ['Content-Type' => 'application/json'],
                      body => '{}');
    if ($r->{status} == 200) {
        ($raw) = last_event();
        unlike($raw // '', qr/s3cret/,
               'TOKEN=s3cret accepted as the token: secret not stored');
    } else {
        is($r->{status}, 401, 'TOKEN=s3cret not taken as the token: 401');
        is(xlen(), $before, 'TOKEN=s3cret: nothing appended');
    }
}

# --- inheritance -------------------------------------------------------------

{
    local $port = $p_inh1;
    refused('server-level allow_ips reaches the location', 403,
            'AddressNotAllowed', path => '/inherit');
    taken('location allow_ips overrides the server', path => '/override');
}

{
    local $port = $p_inh2;
    my $r = refused('server-level methods reach the location', 405,
                    'MethodNotAllowed', path => '/inherit');
    is($r->{headers}{allow}, 'PUT', 'inherited Allow: PUT');
    refused('server-level referers reach the location', 403,
            'RefererNotAllowed', method => 'PUT', path => '/inherit');
    refused('server-level token reaches the location', 401, 'InvalidToken',
            method => 'PUT', path => '/inherit',
            headers => ['Content-Type' => 'application/json',
                        Referer => 'http://example.com/']);
    taken('all inherited checks pass', method => 'PUT',
          path => '/inherit?token=t0k',
          headers => ['Content-Type' => 'application/json',
                      Referer => 'http://example.com/']);

    refused('location referer list replaces the server list', 403,
            'RefererNotAllowed', path => '/override?token=t0k',
            headers => ['Content-Type' => 'application/json',
                        Referer => 'http://example.com/']);
    refused('token still inherited where others are overridden', 401,
            'InvalidToken', path => '/override');
    taken('overridden location', path => '/override?token=t0k');

    refused('nested location: inner takes outer token', 401, 'InvalidToken',
            method => 'PUT', path => '/outer/inner?token=t0k',
            headers => ['Content-Type' => 'application/json',
                        Referer => 'http://example.com/']);
    taken('nested location with the outer token', method => 'PUT',
          path => '/outer/inner?token=outer',
          headers => ['Content-Type' => 'application/json',
                      Referer => 'http://example.com/']);
}

# --- answered before the body arrives ------------------------------------------

# Sends the head of a request announcing a large body plus only a few bytes
# of it, and waits (at most $wait s) for a complete final answer; returns
# the final status (0 if none), its JSON body, and the status of the first
# response line seen (100 if an interim "100 Continue" came first).
sub answer_without_body {
    my ($p, $method, $path, $wait, @hdr) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $p,
                                Proto => 'tcp', Timeout => 5)
        or return (0);
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
            . "Content-Type: application/json\r\n"
            . "Content-Length: 1000000\r\n";
    my $expect = grep { lc $_ eq 'expect' } @hdr;
    while (my ($k, $v) = splice @hdr, 0, 2) { $req .= "$k: $v\r\n" }
    $req .= "\r\n";
    $req .= "{\"partial\":" unless $expect;
    local $SIG{PIPE} = 'IGNORE';
    print {$s} $req;
    $s->blocking(0);
    my ($resp, $first) = ('', 0);
    my $end = Time::HiRes::time() + $wait;
    while (Time::HiRes::time() < $end) {
        my $n = sysread($s, my $buf, 65536);
        if ($n) {
            $resp .= $buf;
            $first ||= $1 if $resp =~ /^HTTP\/1\.1 (\d+)/;
            (my $final = $resp) =~ s/^(HTTP\/1\.1 1\d\d[^\r]*\r\n(?:[^\r]+\r\n)*\r\n)+//;
            if ($final =~ /^HTTP\/1\.1 (\d+).*?\r\nContent-Length: (\d+)\r\n.*?\r\n\r\n(.*)$/si
                && length($3) >= $2)
            {
                close $s;
                return ($1, EBTest::json_decode(substr($3, 0, $2)), $first);
            }
            next;
        }
        last if defined $n;
        Time::HiRes::sleep(0.01);
    }
    close $s;
    return (0, undef, $first);
}

{
    my $before = xlen();
    my ($st, $j) = answer_without_body($port, 'GET', '/default', 3);
    is($st, 405, 'method refused before the announced body arrived');
    ($st, $j) = answer_without_body($port, 'POST', '/ip/cidr-10', 3);
    is($st, 403, 'address refused before the announced body arrived');
    ($st, $j) = answer_without_body($port, 'POST', '/ref-strict', 3);
    is($st, 403, 'Referer refused before the announced body arrived');
    ($st, $j) = answer_without_body($port, 'POST', '/tok?token=no', 3);
    is($st, 401, 'token refused before the announced body arrived');
    is($j && $j->{errorCode}, 'InvalidToken', '... with its JSON error');
    ($st) = answer_without_body($port, 'POST', '/tok?token=s3cret', 0.5);
    is($st, 0, 'an accepted request waits for its body');

    # Expect: 100-continue: a refused request must get its final answer
    # without first being invited to send the body
    my @expect = (Expect => '100-continue');
    for my $c ([ 'method', 'PUT', '/default', 405 ],
               [ 'address', 'POST', '/ip/cidr-10', 403 ],
               [ 'Referer', 'POST', '/ref-strict', 403 ],
               [ 'token', 'POST', '/tok?token=no', 401 ])
    {
        my ($what, $m, $path, $want) = @$c;
        my ($st, $j, $first) = answer_without_body($port, $m, $path, 3, @expect);
        is($st, $want, "Expect: 100-continue, $what refused: $want");
        is($first, $want, "Expect: 100-continue, $what refused: "
                          . 'no "100 Continue" before the refusal');
    }
    my (undef, undef, $first) = answer_without_body($port, 'POST',
        '/tok?token=s3cret', 0.5, @expect);
    is($first, 100, 'Expect: 100-continue, accepted: "100 Continue" sent');
    is(xlen(), $before, 'nothing appended by partial requests');
}

# --- counters ------------------------------------------------------------------

{
    my $m1 = metrics();
    for my $reason (qw(method address referer token)) {
        cmp_ok(($m1->{$reason} // 0) - ($m0->{$reason} // 0), '>', 0,
               "rejected_total{reason=\"$reason\"} increased");
    }
    is(($m1->{body_too_large} // 0) - ($m0->{body_too_large} // 0), 0,
       'no body rejection counted for checks before the body');
}

$ngx->finish;
done_testing;
