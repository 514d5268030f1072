#!/usr/bin/perl
# ebd's http and cloudevents targets over HTTP/2 ("http_version": "2")
# end to end: events PUT into a real nginx (the built module) land in
# Redis, a real ebd delivers them over HTTP/2 to an independent HTTP/2
# server, node's own node:http2 (t/node/h2-peer.mjs), which logs every
# request. Covered: h2c (prior knowledge) for a CloudEvents binary
# target, 200 events each exactly once over few reused connections, the
# pseudo-headers, ce-* headers, body, user-agent, traceparent, no
# connection-specific header; an http target's method, headers, query,
# basic and api_key authentication; retries after 503s and a 408, a
# 429's Retry-After, a 400 straight to the dead-letter stream, a reset
# stream and a connection closed under a request retried; a timeout
# that resets its stream while the other requests on the same
# connection go on; GOAWAY every 50 requests: 300 events each delivered
# once, refused streams sent again on new connections without failing
# an attempt; the peer's SETTINGS_MAX_CONCURRENT_STREAMS of 4 held on
# every connection, and no stream opened before the peer's SETTINGS
# came (so none is refused, no attempt fails); an HTTP/1.1 server refused with a clear error; TLS
# with ALPN h2 and the certificate checked against a test CA
# (SSL_CERT_FILE) and the IP address, and a certificate for another
# name refused; `ebd -t` and `nginx -t` refusing http_version "3"; no
# secret in ebd's debug log or a dead letter.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use POSIX ();
use File::Temp ();
use FindBin;
use lib "$FindBin::Bin/lib";
use EBTest qw(wait_for);
use EBTest::Peer;
use EBTest::TLS;
use EBTest::Blackhole;
use EBTest::NodePeer;

my $NODE_DIR = "$FindBin::Bin/node";

plan skip_all => 'ebd not built' unless -x EBTest::Ebd::binary();
plan skip_all => 'node is not installed' unless `node --version 2>/dev/null`;
plan skip_all => 'openssl is not installed' unless `openssl version 2>/dev/null`;

my $JSON = JSON::PP->new->utf8->canonical;
my $T0 = time;

# the peers are plain http:// on the loopback: the connections say so
sub INSECURE() { (insecure => JSON::PP::true) }

my %SECRET = (
    basic_password => 'pw-Secret-h2-basic-123',
    api_key        => 'key-Secret-h2-456',
);

# --- certificates: a test CA, a server certificate for 127.0.0.1 (and
# localhost), one of the same CA for another name only

my $tmp = File::Temp::tempdir('eb-096-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $tls = EBTest::TLS->make($tmp);
EBTest::TLS->server_for($tmp, 'other', 'other.example');

# --- the peers ---------------------------------------------------------------

my $retry = { strategy => 'backoff', attempts => 3, interval => '50ms',
              max_interval => '100ms' };

my $h2 = H2Peer->start(paths => {
    '/flaky' => { seq => [ 503, 503, 200 ] },
    '/later' => { seq => [ { status => 429, retryAfter => '1' }, 200 ] },
    '/bad'   => 400,
    '/rst'   => { seq => [ { reset => JSON::PP::true }, 200 ] },
    '/drop'  => { seq => [ { close => JSON::PP::true }, 200 ] },
    '/t408'  => { seq => [ 408, 200 ] },
    '/tmo'   => { bodyHas => { sleepy => { status => 200, delay => 2000 } } },
});
my $ga  = H2Peer->start(goawayEvery => 50);
my $mcs = H2Peer->start(maxConcurrentStreams => 4,
                        paths => { '/mcs' => { status => 200, delay => 100 } });
my $tpeer = H2Peer->start(tls => { key => $tls->{server_key}, cert => $tls->{server_cert} });
my $wrong = H2Peer->start(tls => { key => "$tmp/other.key", cert => "$tmp/other.pem" });
my $h1 = EBTest::Peer->start(control => {});
# a server that accepts and then says nothing (no SETTINGS, no answer)
my $silent = EBTest::Blackhole->start(to => '127.0.0.1:' . $h1->port);
$silent->blackhole(new => 1);

# --- the configuration -------------------------------------------------------

my $key_file = "$tmp/api.key";
EBTest::write_file($key_file, "$SECRET{api_key}\n");

sub H2() { (http_version => '2') }
sub on_type { { type => [ $_[0] ] } }
sub rule { my ($type, @t) = @_; { pattern => on_type($type),
                                  targets => [ map { { target => $_ } } @t ] } }

my $cfg = {
    connections => {
        'basic-c' => { type => 'basic', INSECURE, username => 'alice',
                       password => $SECRET{basic_password} },
        'key-c'   => { type => 'api_key', INSECURE, header => 'X-Api-Key',
                       value_file => $key_file },
    },
    targets => {
        ce     => { type => 'cloudevents', H2, url => $h2->url('/ce?src=eb&x=1') },
        hbasic => { type => 'http', H2, url => $h2->url('/basic?fixed=1'),
                    method => 'PUT', headers => { 'X-Custom' => 'v1' },
                    query => { q => 'a b&c', n => '7' }, connection => 'basic-c' },
        hkey   => { type => 'http', H2, url => $h2->url('/apikey'),
                    connection => 'key-c' },
        flaky  => { type => 'http', H2, url => $h2->url('/flaky'), retry => $retry },
        later  => { type => 'http', H2, url => $h2->url('/later'), retry => $retry },
        bad    => { type => 'http', H2, url => $h2->url('/bad'), retry => $retry },
        rst    => { type => 'http', H2, url => $h2->url('/rst'), retry => $retry },
        drop   => { type => 'http', H2, url => $h2->url('/drop'), retry => $retry },
        t408   => { type => 'http', H2, url => $h2->url('/t408'), retry => $retry },
        tmo    => { type => 'http', H2, url => $h2->url('/tmo'), timeout => '300ms',
                    retry => { %$retry, attempts => 2 } },
        fast   => { type => 'http', H2, url => $h2->url('/fast') },
        named  => { type => 'http', H2, url => 'http://localhost:' . $h2->port . '/named' },
        ga     => { type => 'http', H2, url => $ga->url('/ga'), retry => $retry },
        mcs    => { type => 'http', H2, url => $mcs->url('/mcs'), concurrency => 32,
                    retry => $retry },
        h1     => { type => 'http', H2, url => $h1->url('/h1'),
                    retry => { %$retry, attempts => 2 } },
        silent => { type => 'http', H2, url => 'http://' . $silent->addr . '/s',
                    timeout => '500ms', retry => { %$retry, attempts => 2 } },
        tls    => { type => 'http', H2, url => 'https://127.0.0.1:' . $tpeer->port . '/tls',
                    retry => $retry },
        tlsbad => { type => 'http', H2, url => 'https://127.0.0.1:' . $wrong->port . '/tls',
                    retry => { %$retry, attempts => 2 } },
    },
    buses => {
        t => { rules => {
            ce     => rule('t.ce', 'ce'),
            auth   => rule('t.auth', 'hbasic', 'hkey'),
            flaky  => rule('t.flaky', 'flaky'),
            later  => rule('t.later', 'later'),
            bad    => rule('t.bad', 'bad'),
            rst    => rule('t.rst', 'rst'),
            drop   => rule('t.drop', 'drop'),
            t408   => rule('t.t408', 't408'),
            tmo    => rule('t.tmo', 'tmo'),
            fast   => rule('t.fast', 'fast'),
            named  => rule('t.named', 'named'),
            ga     => rule('t.ga', 'ga'),
            mcs    => rule('t.mcs', 'mcs'),
            h1     => rule('t.h1', 'h1'),
            silent => rule('t.silent', 'silent'),
            tls    => rule('t.tls', 'tls'),
            tlsbad => rule('t.tlsbad', 'tlsbad'),
        } },
    },
};

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /put { eventbridge_put_events bus=t; }
    }
EOF
my $cfgfile = $ngx->dir . '/buses.json';
EBTest::write_file($cfgfile, $JSON->encode($cfg));
{
    my ($rc, $out) = $ngx->test_conf;
    is($rc, 0, 'nginx -t accepts the configuration') or diag $out;
    my $ebt = `'${\ EBTest::Ebd::binary()}' -t -c '$cfgfile' 2>&1`;
    is($? >> 8, 0, 'ebd -t accepts it') or diag $ebt;
}
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfgfile, redis => $redis,
                             name => 'ebd-096', level => 'debug',
                             env => { SSL_CERT_FILE => $tls->{ca} });
ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'ebd is ready')
    or BAIL_OUT("ebd did not start:\n" . $ebd->log);

# --- helpers -------------------------------------------------------------------

my $seq = 0;

# PutEvents, a batch of CloudEvents (at most 100): their ids
sub put_events {
    my (@evs) = @_;
    for my $e (@evs) {
        $e->{specversion} //= '1.0';
        $e->{id} //= 'h2-' . ++$seq;
        $e->{source} //= '/h2/test';
    }
    my $r = $ngx->request(method => 'POST', path => '/put',
                          headers => [ 'Content-Type' => 'application/cloudevents-batch+json' ],
                          body => $JSON->encode(\@evs));
    my $j = $r->{json} // {};
    is($r->{status} == 200 && ($j->{failedEntryCount} // -1) == 0 ? 1 : 0, 1,
       scalar(@evs) . " event(s) of type $evs[0]{type} accepted") or diag $r->{raw};
    return map { $_->{id} } @evs;
}

# n events of a type, by batches of 100
sub events {
    my ($type, $n, %more) = @_;
    my @ids;
    while ($n > 0) {
        my $k = $n > 100 ? 100 : $n;
        push @ids, put_events(map { { type => $type, %more,
                                      data => { n => $seq + $_, case => $type } } } 1 .. $k);
        $n -= $k;
    }
    return @ids;
}

# the stored events by id: [ decoded, as stored ]
sub stored {
    my %s;
    for my $e (@{ $redis->xrange('eb:{t}:events') }) {
        my $ev = EBTest::json_decode($e->[1]{event} // '') or next;
        $s{ $ev->{id} } = [ $ev, $e->[1]{event} ];
    }
    return \%s;
}

sub answered { [ grep { !$_->{refused} && !$_->{aborted} } @{ $_[0] } ] }

sub ok_reqs {
    my ($peer, $path) = @_;
    return [ grep { $_->{status} >= 200 && $_->{status} < 300 } @{ $peer->requests($path) } ];
}

sub wait_ok {
    my ($peer, $path, $n, $timeout) = @_;
    wait_for(sub { @{ ok_reqs($peer, $path) } >= $n }, $timeout // 10);
    return ok_reqs($peer, $path);
}

sub settled {
    my ($target, $timeout) = @_;
    return EBTest::stream_settled($redis, "eb:{t}:target:$target", $timeout);
}

sub dlq { $redis->xrange("eb:{t}:dlq:$_[0]") }

# the trace entries of a target: [ { outcome, error, ... } ]
sub trace {
    my ($target) = @_;
    return [ grep { ($_->{target} // '') eq $target }
             map { $_->[1] } @{ $redis->xrange('eb:{t}:trace') } ];
}

sub count_by { my ($f, $l) = @_; my %c; $c{ $f->($_) // '' }++ for @$l; \%c }

sub max_of { my $m = 0; $_ > $m and $m = $_ for @_; $m }

# =============================================================================
# 1. CloudEvents binary over h2c: 200 events, each once, few connections
# =============================================================================

{
    my %tp;
    my @evs = map {
        my $n = $_;
        my $e = { type => 't.ce', id => sprintf('ce-%03d', $n),
                  source => '/h2/orders', subject => "order $n",
                  datacontenttype => 'application/json',
                  data => { n => $n, name => "item $n", list => [ 1, 2.5, 'x' ] } };
        if ($n % 2) {
            $e->{traceparent} = sprintf('00-%032x-%016x-01', 0xabc000 + $n, 0xdef000 + $n);
            $tp{ $e->{id} } = $e->{traceparent};
        }
        $e;
    } 1 .. 200;
    put_events(@evs[0 .. 99]);
    put_events(@evs[100 .. 199]);

    my $r = wait_ok($h2, '/ce', 200, 20);
    ok(settled('ce'), 'h2c cloudevents: all 200 entries acknowledged');
    my $all = $h2->requests('/ce');
    is(scalar @$all, 200, 'h2c cloudevents: exactly 200 requests (no retry, no duplicate)');
    is(scalar @$r, 200, 'h2c cloudevents: 200 answered 200');
    my %want = map { $_->{id} => $_ } @evs;
    my $ids = count_by(sub { $_[0]{headers}{'ce-id'} }, $r);
    is_deeply([ sort keys %$ids ], [ sort keys %want ], 'h2c cloudevents: every event arrived');
    is(scalar(grep { $_ != 1 } values %$ids), 0, 'h2c cloudevents: each exactly once');
    my $keys = count_by(sub { $_[0]{headers}{'idempotency-key'} }, $r);
    is(scalar keys %$keys, 200, 'h2c cloudevents: 200 distinct Idempotency-Key values');
    is(scalar(grep { ($_->{headers}{'idempotency-key'} // '') eq "$_->{headers}{'ce-id'}/ce/ce" } @$r),
       200, 'h2c cloudevents: Idempotency-Key is EVENT-ID/RULE/TARGET');

    my $sessions = count_by(sub { $_[0]{session} }, $r);
    my $nsess = scalar keys %$sessions;
    ok($nsess >= 1 && $nsess <= 8, "h2c cloudevents: at most 8 connections ($nsess)");
    cmp_ok($nsess, '<', 20, 'h2c cloudevents: connections reused (many requests each)');
    is(scalar(grep { ($_->{alpn} // '') eq 'h2c' } @$r), 200, 'h2c: the peer saw HTTP/2 cleartext');

    my $port = $h2->{port};
    my %bad;
    my $stored = stored();
    for my $q (@$r) {
        my $h = $q->{headers};
        my $id = $h->{'ce-id'} // '';
        my $e = $want{$id} or next;
        $bad{method}++    unless $h->{':method'} eq 'POST';
        $bad{scheme}++    unless $h->{':scheme'} eq 'http';
        $bad{path}++      unless $h->{':path'} eq '/ce?src=eb&x=1';
        $bad{authority}++ unless $h->{':authority'} eq "127.0.0.1:$port";
        $bad{ua}++        unless ($h->{'user-agent'} // '') eq 'ebd';
        $bad{specversion}++ unless ($h->{'ce-specversion'} // '') eq '1.0';
        $bad{source}++    unless ($h->{'ce-source'} // '') eq '/h2/orders';
        $bad{type}++      unless ($h->{'ce-type'} // '') eq 't.ce';
        $bad{subject}++   unless ($h->{'ce-subject'} // '') eq "order%20$e->{data}{n}";
        $bad{ct}++        unless ($h->{'content-type'} // '') eq 'application/json';
        $bad{body}++      unless $q->{body} eq $JSON->encode($e->{data});
        $bad{tp}++        unless ($h->{traceparent} // '') eq ($stored->{$id}[0]{traceparent} // '-')
                                 && (!$tp{$id} || $h->{traceparent} eq $tp{$id});
        $bad{conn_hdr}++  if grep { $_->[0] =~ /^(connection|host|keep-alive|transfer-encoding|upgrade|proxy-connection|te)$/i }
                             @{ $q->{raw} };
        $bad{upper}++     if grep { $_->[0] =~ /[A-Z]/ } @{ $q->{raw} };
        $bad{data_hdr}++  if grep { /^ce-data/ } keys %$h;
    }
    is_deeply(\%bad, {}, 'h2c cloudevents: every request: :method POST, :scheme http, '
              . ':path with the query, :authority, user-agent ebd, ce-specversion, ce-source, '
              . 'ce-type, ce-subject, content-type, body, traceparent; no connection-specific '
              . 'or uppercase field') or diag explain \%bad;

    # one in full
    my ($q) = grep { ($_->{headers}{'ce-id'} // '') eq 'ce-007' } @$r;
    $q //= { headers => {}, body => '' };
    is($q->{headers}{':method'}, 'POST', 'binary: :method POST');
    is($q->{headers}{':scheme'}, 'http', 'binary: :scheme http');
    is($q->{headers}{':path'}, '/ce?src=eb&x=1', 'binary: :path with the url\'s query');
    is($q->{headers}{'user-agent'}, 'ebd', 'binary: user-agent ebd');
    is($q->{headers}{'ce-id'}, 'ce-007', 'binary: ce-id');
    is($q->{headers}{'ce-source'}, '/h2/orders', 'binary: ce-source');
    is($q->{headers}{'ce-type'}, 't.ce', 'binary: ce-type');
    is($q->{headers}{'ce-specversion'}, '1.0', 'binary: ce-specversion');
    is($q->{headers}{'content-type'}, 'application/json', 'binary: content-type application/json');
    is_deeply(EBTest::json_decode($q->{body}), $want{'ce-007'}{data}, 'binary: the body is the data');
    is($q->{headers}{traceparent}, $tp{'ce-007'}, 'binary: the event\'s traceparent header');
    is($q->{headers}{'ce-traceparent'}, $tp{'ce-007'}, 'binary: and ce-traceparent');
    is($q->{headers}{'idempotency-key'}, 'ce-007/ce/ce', 'binary: Idempotency-Key');
    is(scalar @{ dlq('ce') }, 0, 'h2c cloudevents: no dead letter');
    is(scalar(grep { $_->{outcome} ne 'delivered' } @{ trace('ce') }), 0,
       'h2c cloudevents: every attempt delivered (trace)')
        or diag explain [ grep { $_->{outcome} ne 'delivered' } @{ trace('ce') } ];
}

# =============================================================================
# 2. an http target: method, headers, query; basic and api_key
# =============================================================================

{
    my ($id) = put_events({ type => 't.auth', data => { who => 'me' } });
    my $b = wait_ok($h2, '/basic', 1)->[0] // { headers => {} };
    my $k = wait_ok($h2, '/apikey', 1)->[0] // { headers => {} };
    my $h = $b->{headers};
    is($h->{':method'}, 'PUT', 'http: :method PUT');
    is($h->{authorization}, 'Basic ' . encode_base64("alice:$SECRET{basic_password}", ''),
       'basic: authorization: Basic base64(user:password)');
    is($h->{'x-custom'}, 'v1', 'http: the configured header, its name lowercase');
    is(scalar(grep { $_->[0] eq 'x-custom' } @{ $b->{raw} }), 1, 'http: x-custom sent once');
    my %q = map { my ($a, $v) = split /=/, $_, 2; ($a => $v) } split /&/, $b->{query};
    is($q{fixed}, '1', 'http: the url\'s own query argument kept');
    is($q{n}, '7', 'http: "query" argument n');
    is(H2Peer::pct_decode($q{q} // ''), 'a b&c', 'http: "query" argument q, URL-encoded');
    unlike($b->{query}, qr/ |&c(&|$)/, 'http: nothing left unencoded in :path');
    is($h->{'ce-id'}, $id, 'http: ce-id');
    is($h->{'idempotency-key'}, "$id/auth/hbasic", 'http: Idempotency-Key');
    is($h->{'user-agent'}, 'ebd', 'http: user-agent ebd');
    is($h->{'content-type'}, 'application/json', 'http: content-type application/json');
    is((EBTest::json_decode($b->{body}) // {})->{id}, $id, 'http: the body is the event');
    is($k->{headers}{':method'}, 'POST', 'api_key: POST by default');
    is($k->{headers}{'x-api-key'}, $SECRET{api_key}, 'api_key: the header and its value');
    ok(!defined $k->{headers}{authorization}, 'api_key: no authorization header');
    is($k->{headers}{'ce-id'}, $id, 'api_key: ce-id');
    ok(settled('hbasic') && settled('hkey'), 'basic and api_key: acknowledged');
}

# =============================================================================
# 3. retries: 503 503 200; 429 with Retry-After; 400 dead-lettered; a reset
# =============================================================================

{
    my ($fid) = put_events({ type => 't.flaky', data => { x => 1 } });
    my ($lid) = put_events({ type => 't.later', data => { x => 2 } });
    my ($bid) = put_events({ type => 't.bad', data => { x => 3 } });
    my ($rid) = put_events({ type => 't.rst', data => { x => 4 } });
    my ($did) = put_events({ type => 't.drop', data => { x => 5 } });
    my ($tid) = put_events({ type => 't.t408', data => { x => 6 } });

    ok(settled('flaky'), '503 503 200: acknowledged');
    my $f = $h2->requests('/flaky');
    is(join(' ', map { $_->{status} } @$f), '503 503 200', '503 503 200: delivered at the 3rd attempt');
    is(scalar(grep { ($_->{headers}{'ce-id'} // '') eq $fid } @$f), 3, '503 503 200: the same event each time');
    is(scalar(keys %{ count_by(sub { $_[0]{headers}{'idempotency-key'} }, $f) }), 1,
       '503 503 200: the same Idempotency-Key each time');
    is(scalar @{ dlq('flaky') }, 0, '503 503 200: no dead letter');
    is(join(' ', map { $_->{outcome} } @{ trace('flaky') }), 'retry retry delivered',
       '503 503 200: traced retry, retry, delivered');

    ok(settled('later', 10), '429 Retry-After: 1: acknowledged');
    my $l = $h2->requests('/later');
    is(join(' ', map { $_->{status} } @$l), '429 200', '429 Retry-After: 1: then 200');
    my $gap = ($l->[1]{time} // 0) - ($l->[0]{time} // 0);
    cmp_ok($gap, '>=', 0.9, "429 Retry-After: 1: honoured, not the 50 ms interval (${\ sprintf '%.3f', $gap} s)");
    cmp_ok($gap, '<', 3, '429 Retry-After: 1: and not much longer');

    ok(wait_for(sub { @{ dlq('bad') } }, 10), '400: dead-lettered');
    sleep 0.2;
    is(scalar @{ $h2->requests('/bad') }, 1, '400: exactly one request, no retry');
    my $d = dlq('bad')->[0][1] // {};
    is($d->{status}, '400', '400: the status in the dead letter');
    like($d->{error} // '', qr/HTTP 400/, '400: the error in the dead letter');
    is($d->{attempts}, 1, '400: at the first attempt');
    is((EBTest::json_decode($d->{event} // '') // {})->{id}, $bid, '400: the dead letter holds the event');

    ok(settled('rst'), 'a reset stream: acknowledged');
    my $s = $h2->requests('/rst');
    is(join(' ', map { $_->{reset} ? 'reset' : $_->{status} } @$s), 'reset 200',
       'a reset stream (RST_STREAM INTERNAL_ERROR): retried, then delivered');
    my $tr = trace('rst');
    is(join(' ', map { $_->{outcome} } @$tr), 'retry delivered', 'a reset stream: traced retry, delivered');
    like($tr->[0]{error} // '', qr/stream was closed without an answer.*INTERNAL_ERROR/i,
         'a reset stream: the error says so') or diag explain $tr;
    is(scalar @{ dlq('rst') }, 0, 'a reset stream: no dead letter');

    ok(settled('drop'), 'a closed connection: acknowledged');
    my $c = $h2->requests('/drop');
    is(join(' ', map { $_->{closed} ? 'closed' : $_->{status} } @$c), 'closed 200',
       'a connection closed under a request: retried, then delivered');
    cmp_ok($c->[1]{session} // 0, '!=', $c->[0]{session} // 0, 'a closed connection: on a new one');
    $tr = trace('drop');
    is(join(' ', map { $_->{outcome} } @$tr), 'retry delivered', 'a closed connection: traced retry, delivered');
    like($tr->[0]{error} // '', qr/closed the connection|reset by peer/i,
         'a closed connection: the error says so') or diag explain $tr;

    ok(settled('t408'), '408: acknowledged');
    is(join(' ', map { $_->{status} } @{ $h2->requests('/t408') }), '408 200', '408: retried, then delivered');
}

# =============================================================================
# 4. a timeout: the stream reset, the other streams of the connection go on
# =============================================================================

{
    my ($sid) = put_events({ type => 't.tmo', data => { sleepy => 1 } });
    sleep 0.05;
    my @fid = put_events(map { { type => 't.tmo', data => { quick => $_ } } } 1 .. 5);
    my @xid = put_events(map { { type => 't.fast', data => { quick => $_ } } } 1 .. 3);
    my $q = wait_ok($h2, '/tmo', 5, 5);
    my $x = wait_ok($h2, '/fast', 3, 5);
    my $dl_meanwhile = scalar @{ dlq('tmo') };
    is(scalar @$q, 5, 'timeout: the 5 quick events of the same target answered');
    is(scalar @$x, 3, 'timeout: and another target\'s on the same peer');
    is($dl_meanwhile, 0, 'timeout: ... while the slow one was still being tried');
    ok(settled('fast', 5), 'timeout: the other target acknowledged');

    ok(wait_for(sub { @{ dlq('tmo') } }, 10), 'timeout: dead-lettered after its retries');
    my $d = dlq('tmo')->[0][1] // {};
    like($d->{error} // '', qr/timed out/, 'timeout: the error says "timed out"');
    is($d->{attempts}, 3, 'timeout: 3 attempts (2 retries)');
    is((EBTest::json_decode($d->{event} // '') // {})->{id}, $sid, 'timeout: the slow event');
    ok(wait_for(sub { 3 == grep { $_->{aborted} } @{ $h2->requests('/tmo') } }, 5),
       'timeout: the peer saw each of the 3 attempts cancelled');
    my @slow = grep { $_->{body} =~ /sleepy/ } @{ $h2->requests('/tmo') };
    is(scalar(grep { ($_->{rst} // -1) == 8 } @slow), 3, 'timeout: reset with RST_STREAM CANCEL (8)')
        or diag explain \@slow;
    # a quick one came and was answered on a connection while a slow
    # stream was open on it
    my @overlap = grep { my $f = $_; grep { $_->{session} == $f->{session}
                                             && $_->{time} <= $f->{time}
                                             && $f->{done} <= $_->{done} } @slow } @$q;
    ok(scalar @overlap, 'timeout: quick requests answered on the same connection while a '
       . 'slow stream was open on it (' . scalar(@overlap) . ' of 5)')
        or diag explain [ map { { session => $_->{session}, time => $_->{time},
                                  done => $_->{done} } } @slow, @$q ];
    is(scalar(grep { ($_->{outcome} // '') eq 'delivered' } @{ trace('tmo') }), 5,
       'timeout: 5 delivered');
}

# =============================================================================
# 5. GOAWAY every 50 requests: 300 events, each exactly once
# =============================================================================

{
    my $t0 = time;
    my @ids = events('t.ga', 300);
    my $r = wait_ok($ga, '/ga', 300, 20);
    ok(settled('ga', 10), 'GOAWAY: all 300 entries acknowledged');
    my $all = $ga->requests('/ga');
    my $keys = count_by(sub { $_[0]{headers}{'idempotency-key'} }, $r);
    is(scalar @$r, 300, 'GOAWAY: 300 requests answered 200');
    is(scalar keys %$keys, 300, 'GOAWAY: 300 distinct Idempotency-Key values');
    is(scalar(grep { $_ > 1 } values %$keys), 0, 'GOAWAY: no event processed twice');
    is_deeply([ sort map { $_->{headers}{'ce-id'} } @$r ], [ sort @ids ], 'GOAWAY: every event');
    my $sess = count_by(sub { $_[0]{session} }, answered($all));
    cmp_ok(scalar keys %$sess, '>=', 6, 'GOAWAY: over 6 connections or more ('
           . scalar(keys %$sess) . ')');
    is(scalar(grep { $_ > 50 } values %$sess), 0, 'GOAWAY: none processed more than 50');
    is(scalar @{ dlq('ga') }, 0, 'GOAWAY: nothing in the dead-letter stream');
    my @fail = grep { $_->{outcome} ne 'delivered' } @{ trace('ga') };
    is(scalar @fail, 0, 'GOAWAY: refused streams sent again without a failed attempt (trace)')
        or diag explain [ @fail[0 .. ($#fail < 4 ? $#fail : 4)] ];
    # the sessions the peer ended: each after a GOAWAY, at its 50th request
    wait_for(sub { @{ $ga->sessions } >= 6 }, 5);
    my $ended = $ga->sessions;
    cmp_ok(scalar(grep { defined $_->{goaway} && $_->{requests} == 50 } @$ended), '>=', 6,
           'GOAWAY: 6 sessions or more ended by a GOAWAY after their 50th request')
        or diag explain $ended;
    my $refused = grep { $_->{refused} } @$all;
    note "GOAWAY: ${\ scalar keys %$sess} connections, $refused stream(s) refused after a GOAWAY, "
         . sprintf('%.2f s', time - $t0);
}

# =============================================================================
# 6. SETTINGS_MAX_CONCURRENT_STREAMS 4, concurrency 32
# =============================================================================

{
    my @ids = events('t.mcs', 64);
    my $r = wait_ok($mcs, '/mcs', 64, 15);
    ok(settled('mcs', 10), 'max concurrent streams 4: all acknowledged');
    my $keys = count_by(sub { $_[0]{headers}{'idempotency-key'} }, $r);
    is(scalar @$r, 64, 'max concurrent streams 4: 64 answered 200');
    is(scalar keys %$keys, 64, 'max concurrent streams 4: each event once');
    my $max = max_of(map { $_->{open} } @{ $mcs->requests('/mcs') });
    cmp_ok($max, '<=', 4, "max concurrent streams 4: never more open on a connection ($max)");
    is($max, 4, 'max concurrent streams 4: and the 4 used');
    my $sess = count_by(sub { $_[0]{session} }, $r);
    cmp_ok(scalar keys %$sess, '>', 1, 'max concurrent streams 4: more than one connection ('
           . scalar(keys %$sess) . ')');
    cmp_ok(scalar keys %$sess, '<=', 8, 'max concurrent streams 4: 8 at most');
    is(scalar @{ dlq('mcs') }, 0, 'max concurrent streams 4: no dead letter');
    # ebd opens no stream before the peer's SETTINGS said how many: none
    # is refused, no attempt fails
    my @fail = grep { $_->{outcome} ne 'delivered' } @{ trace('mcs') };
    is(scalar @fail, 0, 'max concurrent streams 4: no attempt failed (trace)')
        or diag explain [ @fail[0 .. ($#fail < 2 ? $#fail : 2)] ];
}

# =============================================================================
# 7. an HTTP/1.1 server
# =============================================================================

{
    my ($id) = put_events({ type => 't.h1', data => { x => 1 } });
    ok(wait_for(sub { @{ dlq('h1') } }, 10), 'HTTP/1.1 server: dead-lettered after the retries');
    my $d = dlq('h1')->[0][1] // {};
    like($d->{error} // '', qr/did not answer in HTTP\/2/, 'HTTP/1.1 server: the error says so');
    note "HTTP/1.1 server: $d->{error}";
    is($d->{attempts}, 3, 'HTTP/1.1 server: 3 attempts');
    is((EBTest::json_decode($d->{event} // '') // {})->{id}, $id, 'HTTP/1.1 server: the event');
    is(scalar(grep { $_->{outcome} eq 'retry' } @{ trace('h1') }), 2, 'HTTP/1.1 server: retried twice');
}

# a host name, not an address: resolved on the loop (evdns, /etc/hosts).
# ebd connects to the first address it gets and the peer listens on
# 127.0.0.1 only: not run where /etc/hosts gives localhost an IPv6
# address too
SKIP: {
    my $hosts = eval { EBTest::slurp('/etc/hosts') } // '';
    skip 'localhost has an IPv6 address in /etc/hosts', 2
        if $hosts =~ /^\s*[0-9a-fA-F:]*:[0-9a-fA-F:]*\s.*\blocalhost\b/m
           || $hosts !~ /^\s*127\.0\.0\.1\s.*\blocalhost\b/m;
    put_events({ type => 't.named', data => { x => 1 } });
    my $r = wait_ok($h2, '/named', 1, 10);
    is(scalar @$r, 1, 'a host name: resolved, delivered');
    like($r->[0]{headers}{':authority'} // '', qr/^localhost:\d+$/, 'a host name: :authority localhost:PORT');
}

# a server that never sends its SETTINGS: each attempt times out, and
# the connection is given up (its connect timeout runs until SETTINGS
# come), so the next attempt makes a new one
{
    put_events({ type => 't.silent', data => { x => 1 } });
    ok(wait_for(sub { @{ dlq('silent') } }, 10), 'silent server: dead-lettered after the retries');
    my $d = dlq('silent')->[0][1] // {};
    like($d->{error} // '', qr/timed out|sent no HTTP\/2 SETTINGS/, 'silent server: a timeout');
    note "silent server: $d->{error}";
    is($d->{attempts}, 3, 'silent server: 3 attempts');
    cmp_ok($silent->accepted, '>=', 2, 'silent server: a connection that never became HTTP/2 was given up ('
           . $silent->accepted . ' made)');
}

# =============================================================================
# 8. TLS: ALPN h2, the certificate checked
# =============================================================================

{
    my @ids = events('t.tls', 5);
    my $r = wait_ok($tpeer, '/tls', 5);
    ok(settled('tls'), 'TLS: acknowledged');
    is(scalar @$r, 5, 'TLS: 5 delivered');
    is(scalar(grep { ($_->{alpn} // '') eq 'h2' } @$r), 5, 'TLS: ALPN h2');
    is(scalar(grep { $_->{headers}{':scheme'} eq 'https' } @$r), 5, 'TLS: :scheme https');
    is($r->[0]{headers}{':authority'}, '127.0.0.1:' . $tpeer->port, 'TLS: :authority');
    is_deeply([ sort map { $_->{headers}{'ce-id'} } @$r ], [ sort @ids ], 'TLS: each event once');

    my ($bid) = put_events({ type => 't.tlsbad', data => { x => 1 } });
    ok(wait_for(sub { @{ dlq('tlsbad') } }, 10), 'TLS, certificate for another name: dead-lettered');
    my $d = dlq('tlsbad')->[0][1] // {};
    like($d->{error} // '', qr/certificate verify failed/i, 'TLS, another name: a verification error')
        or diag $d->{error};
    note "TLS, another name: $d->{error}";
    like($d->{error} // '', qr/127\.0\.0\.1:${\ $wrong->port}/, 'TLS, another name: naming the peer');
    is($d->{attempts}, 3, 'TLS, another name: 3 attempts');
    is(scalar @{ $wrong->requests('/tls') }, 0, 'TLS, another name: no request was sent');
}

# =============================================================================
# 9. http_version "3" refused by ebd -t and nginx -t
# =============================================================================

{
    for my $type ('http', 'cloudevents') {
        my $c = { targets => { h3 => { type => $type, url => 'https://api.example/h',
                                       http_version => '3' } },
                  buses => { b => { rules => {} } } };
        my $n = EBTest::Nginx->new(http => <<'EOF');
    eventbridge_config %%DIR%%/bad.json;
    server { listen 127.0.0.1:%%PORT%%; location /put { eventbridge_put_events bus=b; } }
EOF
        my $f = $n->dir . '/bad.json';
        EBTest::write_file($f, $JSON->encode($c));
        my $out = `'${\ EBTest::Ebd::binary()}' -t -c '$f' 2>&1`;
        is($? >> 8, 1, "$type http_version \"3\": ebd -t refuses it");
        like($out, qr/targets\.h3\.http_version: must be one of "1\.1", "2"/,
             "$type http_version \"3\": ebd -t names http_version") or diag $out;
        my ($rc, $nout) = $n->test_conf;
        isnt($rc, 0, "$type http_version \"3\": nginx -t refuses it");
        like($nout, qr/targets\.h3\.http_version: must be one of "1\.1", "2"/,
             "$type http_version \"3\": nginx -t names http_version") or diag $nout;
    }
    my $c = { targets => { h => { type => 'http', url => 'https://api.example/h',
                                  http_version => '1.1' } },
              buses => { b => { rules => {} } } };
    my $f = "$tmp/ok.json";
    EBTest::write_file($f, $JSON->encode($c));
    my $out = `'${\ EBTest::Ebd::binary()}' -t -c '$f' 2>&1`;
    is($? >> 8, 0, 'http_version "1.1": accepted') or diag $out;
}

# =============================================================================
# 10. no secret in ebd's log (at debug) or a dead letter
# =============================================================================

{
    my $log = $ebd->log;
    like($log, qr/\(HTTP\/2\): HTTP 200/, 'ebd logged the HTTP/2 attempts at debug');
    my %all = (%SECRET, basic_b64 => encode_base64("alice:$SECRET{basic_password}", ''));
    my $dl = join "\n", map { join ' ', %{ $_->[1] } }
             map { @{ dlq($_) } } keys %{ $cfg->{targets} };
    for my $k (sort keys %all) {
        unlike($log, qr/\Q$all{$k}\E/, "ebd's log does not contain $k");
        unlike($dl, qr/\Q$all{$k}\E/, "no dead letter contains $k");
    }
}

$ebd->finish;
$ngx->finish;
for my $p ($h2, $ga, $mcs, $tpeer, $wrong) {
    ok(!$p->errors, "h2 peer $p->{name}: no session error") or diag join "\n", $p->errors;
}
$silent->stop;
EBTest::cleanup_all();
note sprintf('t/096-ebd-http2.t: %.1f s', time - $T0);
done_testing;


# The HTTP/2 peer: t/node/h2-peer.mjs in a process of its own
package H2Peer;

use parent -norequire, 'EBTest::NodePeer';

sub start {
    my ($class, %conf) = @_;
    return $class->SUPER::start('h2-peer.mjs', %conf);
}

# the sessions that ended: [ { session, alpn, requests, maxOpen, goaway, error } ]
sub sessions { $_[0]->jsonl('sessions') }

# session errors and what node wrote to its stderr
sub errors {
    my ($self) = @_;
    my @e = map { "session $_->{session}: $_->{error}" } grep { $_->{error} }
            @{ $self->sessions };
    my $log = $self->log;
    push @e, $log if length $log;
    return @e;
}

sub pct_decode {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}
