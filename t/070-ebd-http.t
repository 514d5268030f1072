#!/usr/bin/perl
# ebd's http and cloudevents targets end to end: events POSTed into a
# real nginx (the built module) land in Redis, a real ebd delivers them
# to real HTTP peers (EBTest::Peer), and the test checks what the peers
# received. Covered: authentication by connection (basic, api_key,
# oauth2 with one fetch for concurrent attempts, a cache shared by the
# targets of a connection, expiry and refetch, a 401 that invalidates the
# token and sends the attempt again, a failing token endpoint); method,
# headers, query and bodies from transforms; ce-id / Idempotency-Key;
# CloudEvents binary (attributes, percent-encoding, JSON, text and base64
# data, transforms) and structured mode (with and without a transform),
# async delivery; the W3C trace context (traceparent and tracestate
# headers from the event, for http targets and both CloudEvents modes;
# none for an event whose traceparent is not valid); the rate limit; retries after 503s; Retry-After (seconds
# and HTTP-date); 400 straight to the dead-letter stream; a timeout; a slow
# target that does not hold up a fast one; keep-alive connections; and
# that no secret ever reaches ebd's log (at debug) or a dead letter.
use strict;
use warnings;
use utf8;
use Test::More;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(time sleep);
use POSIX ();
use File::Temp ();
use FindBin;
use lib "$FindBin::Bin/lib";
use EBTest qw(wait_for);
use EBTest::Peer;

plan skip_all => 'ebd not built' unless -x EBTest::Ebd::binary();

my $JSON = JSON::PP->new->utf8->canonical;

sub F() { JSON::PP::false }
# the peers are plain http:// on the loopback: the connections say so
sub INSECURE() { (insecure => JSON::PP::true) }

# --- secrets: none of these may ever show up in ebd's log or a dead letter

my %SECRET = (
    basic_password => 'pw-Secret-basic-123',
    api_key        => 'key-Secret-456',
    client_secret  => 'cs-Secret-789',
    bad_secret     => 'wrong-Secret-000',
    query_secret   => 'q-Secret-abc',
    get_secret     => 'gs-Secret:get+/9',
);

# --- the peers ---------------------------------------------------------------

my $api = EBTest::Peer->start(control => {
    paths => {
        '/flaky'  => { seq => [ 503, 503, 200 ] },
        '/later'  => { seq => [ { status => 503, retry_after => '1' }, 200 ] },
        '/later2' => { seq => [ { status => 429, retry_after_in => 2 }, 200 ] },
        '/bad'    => 400,
        '/moved'  => { status => 302, headers => { Location => '/elsewhere' } },
        '/slow'   => { status => 200, delay => 2 },
    },
});
my $auth = EBTest::Peer->start(control => {
    oauth => { token_path => '/token', client_id => 'ebd-client',
               client_secret => $SECRET{client_secret}, expires_in => 2,
               token_delay => 0.5, protect => [ '/secure', '/secure2' ] },
});
# a token endpoint taking GET: the client's credentials as HTTP Basic
my $auth2 = EBTest::Peer->start(control => {
    oauth => { token_path => '/token', client_id => 'ebd get/client',
               client_secret => $SECRET{get_secret}, protect => [ '/secure' ] },
});
# a token endpoint that fails (500) until told otherwise
my %DOWN = (token_path => '/token', client_id => 'ebd-client',
            client_secret => $SECRET{client_secret}, protect => [ '/secure' ]);
my $auth3 = EBTest::Peer->start(control => { oauth => { %DOWN, status => 500 } });
my $ce = EBTest::Peer->start(control => {
    paths => { '/struct' => 202 },
});

# --- the configuration ---------------------------------------------------------

my $retry = { strategy => 'backoff', attempts => 3, interval => '50ms',
              max_interval => '100ms' };

sub on_case { { data => { body => { case => [ $_[0] ] } } } }
sub on_type { { type => [ $_[0] ] } }
sub rule {
    my ($pattern, @targets) = @_;
    return { pattern => $pattern,
             targets => [ map { ref $_ ? $_ : { target => $_ } } @targets ] };
}

# two secrets kept out of the file (ebd_secret.c): the API key in a
# file (with the line end an editor leaves), the client secret in ebd's
# environment
my $secrets_dir = File::Temp::tempdir('eb-070-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $key_file = "$secrets_dir/api.key";
EBTest::write_file($key_file, "$SECRET{api_key}\n");

my $cfg = {
    connections => {
        'basic-c' => { type => 'basic', INSECURE, username => 'alice',
                       password => $SECRET{basic_password} },
        'key-c'   => { type => 'api_key', INSECURE, header => 'X-Api-Key',
                       value_file => $key_file },
        'oa'      => { type => 'oauth2', INSECURE, token_url => $auth->url('/token'),
                       client_id => 'ebd-client',
                       client_secret_env => 'EB_T_OA_SECRET',
                       scope => 'events.write',
                       params => { audience => 'peer one' } },
        'oa-get'  => { type => 'oauth2', INSECURE, token_url => $auth2->url('/token?v=2'),
                       method => 'GET', client_id => 'ebd get/client',
                       client_secret => $SECRET{get_secret},
                       scope => 'events.write', params => { audience => 'peer two' } },
        'oa-down' => { type => 'oauth2', INSECURE, token_url => $auth3->url('/token'),
                       client_id => 'ebd-client',
                       client_secret => $SECRET{client_secret} },
        'oa-bad'  => { type => 'oauth2', INSECURE, token_url => $auth->url('/token'),
                       client_id => 'ebd-client',
                       client_secret => $SECRET{bad_secret} },
    },
    targets => {
        basic   => { type => 'http', url => $api->url('/basic'),
                     connection => 'basic-c' },
        apikey  => { type => 'http', url => $api->url('/apikey'),
                     connection => 'key-c' },
        oauth   => { type => 'http', url => $auth->url('/secure'),
                     connection => 'oa', retry => $retry },
        oauth2  => { type => 'http', url => $auth->url('/secure2'),
                     connection => 'oa', retry => $retry },
        oauthbad => { type => 'http', url => $auth->url('/secure'),
                      connection => 'oa-bad',
                      retry => { %$retry, attempts => 2 } },
        oaget   => { type => 'http', url => $auth2->url('/secure'),
                     connection => 'oa-get', retry => $retry },
        oadown  => { type => 'http', url => $auth3->url('/secure'),
                     connection => 'oa-down', retry => { %$retry, attempts => 100 } },
        plain   => { type => 'http', url => $api->url('/plain') },
        tmpl    => { type => 'http', url => $api->url('/tmpl?fixed=1'),
                     method => 'PUT',
                     headers => { 'X-Custom' => 'v1', 'X-Other' => 'two words' },
                     query => { q => 'a b&c=d/é', token => $SECRET{query_secret} } },
        jpath   => { type => 'http', url => $api->url('/jpath'), method => 'PATCH' },
        jobj    => { type => 'http', url => $api->url('/jobj') },
        del     => { type => 'http', url => $api->url('/del'), method => 'DELETE' },
        get     => { type => 'http', url => $api->url('/get'), method => 'GET',
                     query => { a => '1' } },
        rated   => { type => 'http', url => $api->url('/rated'), rate => 10 },
        flaky   => { type => 'http', url => $api->url('/flaky'), retry => $retry },
        later   => { type => 'http', url => $api->url('/later'), retry => $retry },
        later2  => { type => 'http', url => $api->url('/later2'), retry => $retry },
        bad     => { type => 'http', url => $api->url('/bad'), retry => $retry },
        moved   => { type => 'http', url => $api->url('/moved'), retry => $retry },
        slow    => { type => 'http', url => $api->url('/slow') },
        fast    => { type => 'http', url => $api->url('/fast') },
        tooslow => { type => 'http', url => $api->url('/slow'), timeout => '300ms',
                     retry => { %$retry, attempts => 2 } },
        refused => { type => 'http', url => 'http://127.0.0.1:' . EBTest::free_port() . '/x',
                     retry => { %$retry, attempts => 2 } },
        cebin   => { type => 'cloudevents', url => $ce->url('/bin') },
        cebintx => { type => 'cloudevents', url => $ce->url('/bintx'),
                     mode => 'binary', headers => { 'X-Fn' => 'f1' } },
        cestruct => { type => 'cloudevents', url => $ce->url('/struct'),
                      mode => 'structured', delivery => 'async' },
        cestructtx => { type => 'cloudevents', url => $ce->url('/structtx'),
                        mode => 'structured' },
        trc     => { type => 'http', url => $api->url('/trace') },
        trcbin  => { type => 'cloudevents', url => $ce->url('/trbin') },
        trcst   => { type => 'cloudevents', url => $ce->url('/trst'),
                     mode => 'structured' },
    },
    buses => {
        t => { rules => {
            basic  => rule(on_case('basic'), 'basic'),
            apikey => rule(on_case('apikey'), 'apikey'),
            oauth  => rule(on_case('oauth'), 'oauth', 'oauth2'),
            oauthbad => rule(on_case('oauthbad'), 'oauthbad'),
            oauthget => rule(on_case('oauthget'), 'oaget'),
            oauthdown => rule(on_case('oauthdown'), 'oadown'),
            shapes => rule(on_case('shapes'), 'plain',
                { target => 'tmpl', transform => {
                    form => 'TEMPLATE',
                    value => { name => '$.data.body.name', n => '$.data.body.n' },
                    template => '{"user":"${name}","n":${n},"greeting":"hi ${name}"}' } },
                { target => 'jpath', transform => { form => 'JSONPATH',
                                                    value => '$.data.body.name' } },
                { target => 'jobj', transform => { form => 'JSONPATH',
                                                   value => '$.data.body.nested' } },
                'del', 'get'),
            rated  => rule(on_case('rated'), 'rated'),
            flaky  => rule(on_case('flaky'), 'flaky'),
            later  => rule(on_case('later'), 'later', 'later2'),
            bad    => rule(on_case('bad'), 'bad', 'moved'),
            race   => rule(on_case('race'), 'slow'),
            fast   => rule(on_case('fast'), 'fast'),
            tooslow => rule(on_case('tooslow'), 'tooslow', 'refused'),
            cebin  => rule(on_type('com.example.bin'), 'cebin',
                { target => 'cebintx', transform => { form => 'JSONPATH',
                                                      value => '$.data' } }),
            ceraw  => rule(on_type('com.example.raw'), 'cebin'),
            trace  => rule(on_case('trace'), 'trc'),
            cetrace => rule(on_type('com.example.trace'), 'trcbin', 'trcst'),
            cestruct => rule(on_type('com.example.struct'), 'cestruct',
                { target => 'cestructtx', transform => {
                    form => 'TEMPLATE', value => { o => '$.data.order' },
                    template => '{"order":${o},"via":"transform"}' } }),
        } },
    },
};

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /t   { eventbridge_source t.src bus=t; }
        location /put { eventbridge_put_events bus=t; }
    }
EOF
my $cfgfile = $ngx->dir . '/buses.json';
{
    open my $fh, '>', $cfgfile or die "$cfgfile: $!";
    print {$fh} $JSON->encode($cfg);
    close $fh;
}
{
    my ($rc, $out) = $ngx->test_conf;
    is($rc, 0, 'nginx -t accepts the configuration') or diag $out;
}
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfgfile, redis => $redis,
                             name => 'ebd-070', level => 'debug',
                             env => { EB_T_OA_SECRET => $SECRET{client_secret} });
ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'ebd is ready')
    or BAIL_OUT("ebd did not start:\n" . $ebd->log);

# --- helpers -------------------------------------------------------------------

# POSTs a webhook body to the source (a list of pairs, or JSON text);
# returns the event id
sub event {
    my (@kv) = @_;
    my %body = @kv > 1 ? @kv : %{ EBTest::json_decode($kv[0]) };
    my $r = $ngx->request(method => 'POST', path => '/t',
                          headers => [ 'Content-Type' => 'application/json' ],
                          body => @kv > 1 ? $JSON->encode(\%body) : $kv[0]);
    is($r->{status}, 200, "event $body{case} accepted") or diag $r->{raw};
    return $r->{json}{eventId} // '';
}

# PutEvents, one structured CloudEvent; returns its id
sub put_event {
    my ($ev) = @_;
    my $r = $ngx->request(method => 'POST', path => '/put',
                          headers => [ 'Content-Type' => 'application/cloudevents+json' ],
                          body => $JSON->encode($ev));
    is($r->{status}, 200, "PutEvents $ev->{id} accepted") or diag $r->{raw};
    return $ev->{id};
}

# the stored event with that id, decoded
sub stored {
    my ($id) = @_;
    for my $e (@{ $redis->xrange('eb:{t}:events') }) {
        my $ev = EBTest::json_decode($e->[1]{event} // '') or next;
        return wantarray ? ($ev, $e->[1]{event}) : $ev if ($ev->{id} // '') eq $id;
    }
    return;
}

sub reqs { my ($peer, $path) = @_; $peer->requests(path => $path) }

sub wait_reqs {
    my ($peer, $path, $n, $timeout) = @_;
    wait_for(sub { @{ reqs($peer, $path) } >= $n }, $timeout // 10);
    return reqs($peer, $path);
}

sub pending {
    my ($target) = @_;
    my $r = $redis->cmd('XPENDING', "eb:{t}:target:$target", 'ebd');
    return ref $r eq 'ARRAY' ? $r->[0] : -1;
}

# all entries of a target stream acknowledged
sub settled {
    my ($target, $timeout) = @_;
    return EBTest::stream_settled($redis, "eb:{t}:target:$target", $timeout);
}

sub dlq {
    my ($target) = @_;
    return $redis->xrange("eb:{t}:dlq:$target");
}

sub pct_decode {
    my ($s) = @_;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    utf8::decode($s);
    return $s;
}

# A binary-mode request as a CloudEvent: ce-* headers (percent-decoded,
# as text), datacontenttype from Content-Type, the body
sub ce_from_binary {
    my ($req) = @_;
    my %ev;
    for my $h (keys %{ $req->{headers} }) {
        next unless $h =~ /^ce-(.+)$/;
        $ev{$1} = pct_decode($req->{headers}{$h});
    }
    $ev{datacontenttype} = $req->{headers}{'content-type'}
        if defined $req->{headers}{'content-type'};
    return (\%ev, $req->{body});
}

# the stored event's attributes as binary mode carries them: text
sub attrs_as_text {
    my ($ev) = @_;
    my %a;
    for my $k (keys %$ev) {
        next if $k eq 'data' || $k eq 'data_base64';
        my $v = $ev->{$k};
        $a{$k} = JSON::PP::is_bool($v) ? ($v ? 'true' : 'false') : "$v";
    }
    return \%a;
}

# =============================================================================
# 1. authentication
# =============================================================================

{
    my $id = event(case => 'basic', n => 1);
    my $r = wait_reqs($api, '/basic', 1);
    is(scalar @$r, 1, 'basic: one request');
    is($r->[0]{headers}{authorization},
       'Basic ' . encode_base64("alice:$SECRET{basic_password}", ''),
       'basic: Authorization: Basic with the connection\'s credentials');
    is($r->[0]{method}, 'POST', 'basic: POST by default');
    is($r->[0]{headers}{'ce-id'}, $id, 'basic: ce-id is the event id');
    is($r->[0]{headers}{'idempotency-key'}, "$id/basic/basic",
       'basic: Idempotency-Key is EVENT-ID/RULE/TARGET (one per delivery)');
    ok(settled('basic'), 'basic: entry acknowledged');
}

{
    my $id = event(case => 'apikey');
    my $r = wait_reqs($api, '/apikey', 1);
    is(scalar @$r, 1, 'api_key: one request');
    is($r->[0]{headers}{'x-api-key'}, $SECRET{api_key}, 'api_key: the header and value');
    ok(!defined $r->[0]{headers}{authorization}, 'api_key: no Authorization header');
    is($r->[0]{headers}{'ce-id'}, $id, 'api_key: ce-id');
    ok(settled('apikey'), 'api_key: entry acknowledged');
}

# OAuth2: five events while the (slow, 0.5 s) token endpoint answers:
# one fetch for all ten attempts of two targets of the same connection
{
    my @ids = map { event(case => 'oauth', i => $_) } 1 .. 5;
    my $s1 = wait_reqs($auth, '/secure', 5);
    my $s2 = wait_reqs($auth, '/secure2', 5);
    my $tok = reqs($auth, '/token');
    is(scalar @$tok, 1, 'oauth2: one token request for 10 concurrent attempts of 2 targets');
    my $t = $tok->[0] // { headers => {} };
    is($t->{method}, 'POST', 'oauth2: token request is a POST');
    like($t->{headers}{'content-type'} // '', qr{^application/x-www-form-urlencoded},
         'oauth2: form-encoded');
    my %f = map { my ($k, $v) = split /=/, $_, 2;
                  for ($k, $v) { $_ //= ''; tr/+/ /; s/%([0-9a-fA-F]{2})/chr hex $1/ge }
                  ($k => $v) } split /&/, $t->{body} // '';
    is_deeply(\%f, { grant_type => 'client_credentials', client_id => 'ebd-client',
                     client_secret => $SECRET{client_secret}, scope => 'events.write',
                     audience => 'peer one' },
              'oauth2: grant_type, client_id, client_secret, scope and params');
    my $issued = $t->{issued} // 'none';
    is(scalar(grep { ($_->{headers}{authorization} // '') eq "Bearer $issued" } @$s1, @$s2),
       10, 'oauth2: every attempt carried the token');
    is(scalar(grep { $_->{status} == 200 } @$s1, @$s2), 10, 'oauth2: all 10 accepted');
    is_deeply([ sort map { $_->{headers}{'ce-id'} } @$s1 ], [ sort @ids ],
              'oauth2: target 1 got each event once');
    is_deeply([ sort map { $_->{headers}{'ce-id'} } @$s2 ], [ sort @ids ],
              'oauth2: target 2 got each event once');
}

# expiry: the token lives 2 s (ebd renews 10% early): a later event
# fetches a new one, without a 401 first
{
    my $t0 = reqs($auth, '/token')->[0]{time} // time;
    # issued 0.5 s after the request (token_delay), renewed 0.2 s early
    sleep 0.1 while time < $t0 + 3.0;
    my $id = event(case => 'oauth', i => 6);
    my $s1 = wait_reqs($auth, '/secure', 6);
    my $s2 = wait_reqs($auth, '/secure2', 6);
    my $tok = reqs($auth, '/token');
    is(scalar @$tok, 2, 'oauth2: expired token: fetched anew');
    my @mine = grep { ($_->{headers}{'ce-id'} // '') eq $id } @$s1, @$s2;
    is(scalar @mine, 2, 'oauth2: expired token: one request per target, no 401');
    is(scalar(grep { $_->{status} == 200
                     && $_->{headers}{authorization} eq "Bearer $tok->[1]{issued}" } @mine),
       2, 'oauth2: expired token: the new token was used');
}

# a 401: the token is invalidated, a new one fetched, the attempt sent again
{
    $auth->control({
        oauth => { token_path => '/token', client_id => 'ebd-client',
                   client_secret => $SECRET{client_secret}, expires_in => 3600,
                   token_delay => 0.2, protect => [ '/secure', '/secure2' ],
                   revoke => 1 },
    });
    my $id = event(case => 'oauth', i => 7);
    wait_for(sub { 2 == grep { $_->{headers}{'ce-id'} eq $id && $_->{status} == 200 }
                   @{ reqs($auth, '/secure') }, @{ reqs($auth, '/secure2') } }, 10);
    my @mine = grep { ($_->{headers}{'ce-id'} // '') eq $id }
        @{ reqs($auth, '/secure') }, @{ reqs($auth, '/secure2') };
    # the second target's attempt may start after the first one's 401
    # already dropped the token: then it only waits for the new one
    for my $p ('/secure', '/secure2') {
        my @st = map { $_->{status} } grep { ($_->{headers}{'ce-id'} // '') eq $id }
            @{ reqs($auth, $p) };
        ok("@st" eq '401 200' || "@st" eq '200',
           "oauth2: revoked token: $p got 401 then 200 (once more), or 200")
            or diag "@st";
    }
    is(scalar(grep { $_->{status} == 401 } @mine) >= 1, 1,
       'oauth2: revoked token: the old token was refused');
    is(scalar(grep { $_->{status} == 200
                     && $_->{headers}{authorization} eq 'Bearer ' . (reqs($auth, '/token')->[2]{issued} // '-') }
              @mine), 2, 'oauth2: revoked token: both delivered with the new token');
    my $tok = reqs($auth, '/token');
    is(scalar @$tok, 3, 'oauth2: revoked token: one new fetch for both');
    ok(settled('oauth') && settled('oauth2'), 'oauth2: all entries acknowledged');
    is(scalar @{ dlq('oauth') } + scalar @{ dlq('oauth2') }, 0, 'oauth2: no dead letter');
    like($ebd->log, qr/oauth2 connection oa: the token was refused/,
         'oauth2: the refusal is logged (by connection name)');
}

# the token endpoint refuses the client: retried, then dead-lettered
{
    my $id = event(case => 'oauthbad');
    ok(wait_for(sub { @{ dlq('oauthbad') } >= 1 }, 10), 'oauth2 refused: dead-lettered after retries');
    my $d = dlq('oauthbad')->[0][1] // {};
    like($d->{error} // '', qr/oauth2 connection oa-bad: token endpoint http:\/\/127\.0\.0\.1:\d+\/token: HTTP 401/,
         'oauth2 refused: the error names the connection and the endpoint');
    is((EBTest::json_decode($d->{event} // '') // {})->{id}, $id, 'oauth2 refused: the event');
    is(scalar(grep { ($_->{headers}{'ce-id'} // '') eq $id } @{ reqs($auth, '/secure') }), 0,
       'oauth2 refused: the target never got the event');
}

# a token request by GET: the form in the query, but the client's id and
# secret as HTTP Basic (client_secret_basic), never in the URL
{
    my $id = event(case => 'oauthget');
    my $s = wait_reqs($auth2, '/secure', 1);
    is(scalar(grep { $_->{status} == 200 } @$s), 1, 'oauth2 GET: delivered with the token');
    my $tok = reqs($auth2, '/token');
    is(scalar @$tok, 1, 'oauth2 GET: one token request');
    my $t = $tok->[0] // { headers => {} };
    is($t->{method}, 'GET', 'oauth2 GET: token request is a GET');
    unlike($t->{target} // '', qr/client_secret|client_id|Secret|\Q$SECRET{get_secret}\E/,
           'oauth2 GET: neither client_secret nor client_id in the token URL');
    my %q = map { my ($k, $v) = split /=/, $_, 2;
                  for ($k, $v) { $_ //= ''; tr/+/ /; s/%([0-9a-fA-F]{2})/chr hex $1/ge }
                  ($k => $v) } split /&/, $t->{query} // '';
    is_deeply(\%q, { v => '2', grant_type => 'client_credentials', scope => 'events.write',
                     audience => 'peer two' },
              'oauth2 GET: the query: the URL\'s own, grant_type, scope, params');
    is($t->{headers}{authorization},
       'Basic ' . encode_base64('ebd%20get%2Fclient:gs-Secret%3Aget%2B%2F9', ''),
       'oauth2 GET: Authorization: Basic base64(urlencode(id):urlencode(secret))');
    is($s->[0]{headers}{authorization} // '', 'Bearer ' . ($t->{issued} // '-'),
       'oauth2 GET: the target got the token');
    ok(settled('oaget'), 'oauth2 GET: entry acknowledged');
}

# a failing token endpoint is asked again after 1 s, 2 s, 4 s ..., not
# once per attempt: 20 events retried every 50-100 ms make few requests;
# their attempts fail meanwhile (retried); the first token after it
# recovers delivers them all
{
    my @ids = map { event(case => 'oauthdown', i => $_) } 1 .. 20;
    my $t0 = time;
    wait_reqs($auth3, '/token', 1);
    sleep 0.1 while time < $t0 + 4;
    my $n = @{ reqs($auth3, '/token') };
    # asked at about 0, 1 and 3 s
    ok($n >= 2 && $n <= 4, 'failing token endpoint: backoff, not a request per attempt')
        or diag "$n token requests in 4 s";
    my @tr = grep { ($_->[1]{target} // '') eq 'oadown' } @{ $redis->xrange('eb:{t}:trace') };
    ok(scalar(grep { $_->[1]{outcome} eq 'retry'
                     && $_->[1]{error} =~ m{oauth2 connection oa-down: token endpoint http://127\.0\.0\.1:\d+/token: HTTP 500; next token request in \d+ ms} } @tr) >= 20,
       'failing token endpoint: the attempts meanwhile are retried, with the reason')
        or diag explain [ map { $_->[1]{error} } @tr[0 .. 2] ];
    is(scalar @{ reqs($auth3, '/secure') }, 0, 'failing token endpoint: nothing sent without a token');
    is(scalar @{ dlq('oadown') }, 0, 'failing token endpoint: no dead letter');

    $auth3->control({ oauth => \%DOWN });
    my $s = wait_reqs($auth3, '/secure', 20, 15);
    is_deeply([ sort map { $_->{headers}{'ce-id'} } grep { $_->{status} == 200 } @$s ],
              [ sort @ids ], 'token endpoint back: each event delivered once');
    my @tok = @{ reqs($auth3, '/token') };
    is(scalar(grep { $_->{status} == 200 } @tok), 1, 'token endpoint back: one token for all');
    ok(settled('oadown'), 'token endpoint back: all acknowledged');
}

# client_auth "post" with GET is refused: it would put the secret in the URL
{
    my $c = { connections => { g => { type => 'oauth2', token_url => 'https://auth.example/t',
                                      method => 'GET', client_auth => 'post',
                                      client_id => 'i', client_secret => 's' } },
              targets => { h => { type => 'http', url => 'https://api.example/h',
                                  connection => 'g' } },
              buses => { b => { rules => {} } } };
    my $f = $ngx->dir . '/getpost.json';
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} $JSON->encode($c);
    close $fh;
    my $out = `'${\ EBTest::Ebd::binary()}' -t -c '$f' 2>&1`;
    isnt($? >> 8, 0, 'oauth2: client_auth "post" with GET: ebd -t refuses it');
    like($out, qr/connections\.g\.client_auth: "post" with method GET would put the client secret in the token URL: use "basic"/,
         'oauth2: client_auth "post" with GET: and says why') or diag $out;
}

# credentials in clear: ebd -t refuses a connection on a plain http:// url
# unless the connection says "insecure"
{
    my $c = { connections => { k => { type => 'api_key', header => 'X-Key',
                                      value => $SECRET{api_key} } },
              targets => { h => { type => 'http', url => $api->url('/h'), connection => 'k' } },
              buses => { b => { rules => {} } } };
    my $f = $ngx->dir . '/plain.json';
    my $check = sub {
        open my $fh, '>', $f or die "$f: $!";
        print {$fh} $JSON->encode($c);
        close $fh;
        my $out = `'${\ EBTest::Ebd::binary()}' -t -c '$f' 2>&1`;
        return ($? >> 8, $out);
    };
    my ($rc, $out) = $check->();
    is($rc, 1, 'plain http://: ebd -t refuses an api_key connection');
    like($out, qr/targets\.h\.connection: target "h" would send the credentials of connection "k" \(api_key\) in clear: its url is http:\/\/; use https:\/\/, or set "insecure": true in connections\.k/,
         'plain http://: and names the target, the connection and the way out') or diag $out;
    unlike($out, qr/\Q$SECRET{api_key}\E/, 'plain http://: no secret in the message');
    $c->{connections}{k}{insecure} = JSON::PP::true;
    ($rc, $out) = $check->();
    is($rc, 0, 'plain http://: accepted with "insecure": true') or diag $out;
}

# =============================================================================
# 2. method, headers, query, bodies from transforms
# =============================================================================

{
    my $id = event('{"case":"shapes","name":"Zo\u00eb \\"Q\\"","n":42,'
                   . '"nested":{"k":[1,2.50,true]}}');
    my ($ev, $raw) = stored($id);

    my $p = wait_reqs($api, '/plain', 1)->[0] // { headers => {} };
    is($p->{headers}{'content-type'}, 'application/json', 'no transform: application/json');
    is($p->{body}, $raw, 'no transform: the body is the stored event, byte for byte');

    my $t = wait_reqs($api, '/tmpl', 1)->[0] // { headers => {} };
    is($t->{method}, 'PUT', 'method PUT');
    is($t->{headers}{'x-custom'}, 'v1', 'headers: X-Custom');
    is($t->{headers}{'x-other'}, 'two words', 'headers: X-Other');
    is($t->{headers}{'ce-id'}, $id, 'ce-id with a transform too');
    my %q = map { my ($k, $v) = split /=/, $_, 2; ($k => $v) } split /&/, $t->{query};
    is($q{fixed}, '1', 'query: the URL\'s own argument kept');
    is(pct_decode($q{q} =~ tr/+/ /r), 'a b&c=d/é', 'query: value URL-encoded');
    unlike($t->{query}, qr/[ é]|&c=/, 'query: nothing left unencoded');
    is($t->{headers}{'content-type'}, 'application/json', 'TEMPLATE (JSON): application/json');
    is_deeply(EBTest::json_decode($t->{body}),
              { user => "Zoë \"Q\"", n => 42, greeting => "hi Zoë \"Q\"" },
              'TEMPLATE: the body');

    my $j = wait_reqs($api, '/jpath', 1)->[0] // { headers => {} };
    is($j->{method}, 'PATCH', 'method PATCH');
    is($j->{headers}{'content-type'}, 'text/plain; charset=utf-8', 'JSONPATH (text): text/plain');
    my $b = $j->{body}; utf8::decode($b);
    is($b, "Zoë \"Q\"", 'JSONPATH: the string as text');

    my $o = wait_reqs($api, '/jobj', 1)->[0] // { headers => {} };
    is($o->{headers}{'content-type'}, 'application/json', 'JSONPATH (object): application/json');
    is($o->{body}, '{"k":[1,2.50,true]}', 'JSONPATH: the object as compact JSON, numbers as sent');

    my $d = wait_reqs($api, '/del', 1)->[0] // { headers => {} };
    is($d->{method}, 'DELETE', 'method DELETE');
    is($d->{body}, '', 'DELETE: no body');
    ok(!defined $d->{headers}{'content-type'}, 'DELETE: no Content-Type');

    my $g = wait_reqs($api, '/get', 1)->[0] // { headers => {} };
    is($g->{method}, 'GET', 'method GET');
    is($g->{query}, 'a=1', 'GET: the query');
    is($g->{body}, '', 'GET: no body');
    is($g->{headers}{'idempotency-key'}, "$id/shapes/get", 'GET: Idempotency-Key');
    is($d->{headers}{'idempotency-key'}, "$id/shapes/del",
       'the same event, rule, another target: another Idempotency-Key');
}

# =============================================================================
# 3. CloudEvents
# =============================================================================

{
    my $ev_in = { specversion => '1.0', id => 'ce-bin-1', source => '/shop/orders',
                  type => 'com.example.bin', subject => 'order 7',
                  time => '2024-05-13T15:28:29.504+08:00',
                  datacontenttype => 'application/json',
                  myext => "va lue%\"é", num => 42,
                  data => { order => 7, items => [ 'a', 'b' ], price => 1.50 } };
    my $id = put_event($ev_in);
    my ($ev, $raw) = stored($id);
    my $b = wait_reqs($ce, '/bin', 1)->[0] // { headers => {} };
    my ($got, $body) = ce_from_binary($b);
    is_deeply($got, attrs_as_text($ev),
              'binary: every attribute as a ce-* header (or Content-Type), nothing else');
    is($b->{headers}{'ce-specversion'}, '1.0', 'binary: ce-specversion');
    is($b->{headers}{'ce-id'}, 'ce-bin-1', 'binary: ce-id');
    is($b->{headers}{'ce-source'}, '/shop/orders', 'binary: ce-source');
    is($b->{headers}{'ce-type'}, 'com.example.bin', 'binary: ce-type');
    is($b->{headers}{'ce-subject'}, 'order%207', 'binary: ce-subject percent-encoded');
    is($b->{headers}{'ce-time'}, $ev->{time}, 'binary: ce-time');
    is($b->{headers}{'ce-myext'}, 'va%20lue%25%22%C3%A9',
       'binary: space, %, " and non-ASCII percent-encoded');
    is($b->{headers}{'ce-num'}, '42', 'binary: an Integer extension');
    ok(!grep({ /^ce-data/ } keys %{ $b->{headers} }), 'binary: no ce-data*, no ce-datacontenttype');
    is($b->{headers}{'content-type'}, 'application/json', 'binary: Content-Type is datacontenttype');
    is_deeply(EBTest::json_decode($body), $ev_in->{data}, 'binary: the body is the data');
    my ($data_raw) = $raw =~ /"data":(\{.*\})\}$/;
    is($body, $data_raw, 'binary: the data\'s JSON text as stored');
    is($b->{headers}{'idempotency-key'}, 'ce-bin-1/cebin/cebin', 'binary: Idempotency-Key');

    # with a transform: its output is the data
    my $x = wait_reqs($ce, '/bintx', 1)->[0] // { headers => {} };
    ($got) = ce_from_binary($x);
    delete $got->{datacontenttype};
    my $want = attrs_as_text($ev);
    delete $want->{datacontenttype};
    is_deeply($got, $want, 'binary + transform: the event\'s attributes');
    is($x->{headers}{'content-type'}, 'application/json', 'binary + transform: JSON output');
    is_deeply(EBTest::json_decode($x->{body}), $ev_in->{data}, 'binary + transform: the output as body');
    is($x->{headers}{'x-fn'}, 'f1', 'binary: configured headers too');
}

{
    # text data and base64 data
    put_event({ specversion => '1.0', id => 'ce-txt', source => '/s', type => 'com.example.raw',
                datacontenttype => 'text/plain', data => "plain text\nline 2" });
    put_event({ specversion => '1.0', id => 'ce-b64', source => '/s', type => 'com.example.raw',
                datacontenttype => 'application/octet-stream',
                data_base64 => encode_base64("\x00\x01\x02\xff binary", '') });
    put_event({ specversion => '1.0', id => 'ce-nodata', source => '/s', type => 'com.example.raw' });
    my $r = wait_reqs($ce, '/bin', 4);
    my %by = map { ($_->{headers}{'ce-id'} // '') => $_ } @$r;
    my $t = $by{'ce-txt'} // { headers => {} };
    is($t->{headers}{'content-type'}, 'text/plain', 'binary, text data: Content-Type');
    is($t->{body}, "plain text\nline 2", 'binary, text data: the text itself');
    my $b = $by{'ce-b64'} // { headers => {} };
    is($b->{headers}{'content-type'}, 'application/octet-stream', 'binary, data_base64: Content-Type');
    is($b->{body}, "\x00\x01\x02\xff binary", 'binary, data_base64: decoded');
    ok(!defined $b->{headers}{'ce-data_base64'}, 'binary, data_base64: not a header');
    my $n = $by{'ce-nodata'} // { headers => {} };
    is($n->{body}, '', 'binary, no data: empty body');
    ok(!defined $n->{headers}{'content-type'}, 'binary, no data: no Content-Type');
}

{
    my $ev_in = { specversion => '1.0', id => 'ce-struct-1', source => '/shop',
                  type => 'com.example.struct', subject => 's', ext1 => 'x',
                  data => { order => { id => 9, total => 3.25 } } };
    my $id = put_event($ev_in);
    my ($ev, $raw) = stored($id);
    my $s = wait_reqs($ce, '/struct', 1)->[0] // { headers => {} };
    like($s->{headers}{'content-type'} // '', qr{^application/cloudevents\+json(;|$)},
         'structured: application/cloudevents+json');
    is($s->{body}, $raw, 'structured: the event as stored, byte for byte');
    is_deeply(EBTest::json_decode($s->{body}), $ev, 'structured: parses as the event');
    is($s->{headers}{prefer}, 'respond-async', 'async: Prefer: respond-async');
    is($s->{status}, 202, 'async: the sink answered 202');
    ok(settled('cestruct'), 'async: 202 confirms the delivery');
    ok(!grep({ /^ce-/ } keys %{ $s->{headers} }), 'structured: no ce-* headers');

    my $x = wait_reqs($ce, '/structtx', 1)->[0] // { headers => {} };
    my $got = EBTest::json_decode($x->{body}) // {};
    my %want = (%$ev, data => { order => { id => 9, total => 3.25 }, via => 'transform' },
                datacontenttype => 'application/json');
    is_deeply($got, \%want, 'structured + transform: the event with the output as data');
    ok(!defined $x->{headers}{prefer}, 'sync: no Prefer header');
}

# =============================================================================
# 3b. trace context
# =============================================================================

my $TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

{
    # a webhook with a traceparent: the target gets the same one
    my $r = $ngx->request(method => 'POST', path => '/t',
                          headers => [ 'Content-Type' => 'application/json',
                                       traceparent => $TP,
                                       tracestate => 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' ],
                          body => '{"case":"trace","n":1}');
    is($r->{status}, 200, 'trace: webhook with a traceparent accepted');
    my $id1 = $r->{json}{eventId} // '';
    is((stored($id1) // {})->{traceparent}, $TP, 'trace: stored with its traceparent');

    # without one: a new one, the same in the event and the header
    my $id2 = event(case => 'trace', n => 2);
    my $id3 = event(case => 'trace', n => 3);

    my $q = wait_reqs($api, '/trace', 3);
    my %by = map { ($_->{headers}{'ce-id'} // '') => $_ } @$q;
    my $h1 = ($by{$id1} // {})->{headers} // {};
    is($h1->{traceparent}, $TP, 'trace, http: the peer got the same traceparent');
    is($h1->{tracestate}, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
       'trace, http: and the tracestate');

    my @tp = map { (($by{$_} // {})->{headers} // {})->{traceparent} // '' } $id2, $id3;
    like($tp[0], qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'trace, http: a started trace is sent');
    is($tp[0], (stored($id2) // {})->{traceparent}, 'trace, http: the event\'s own');
    is($tp[1], (stored($id3) // {})->{traceparent}, 'trace, http: each event\'s own');
    isnt($tp[0], $tp[1], 'trace, http: one per event');
    ok(!defined $by{$id2}{headers}{tracestate}, 'trace, http: no tracestate when none');

    # an entry whose traceparent is not valid (not through nginx): no header
    my $bad = $JSON->encode({ specversion => '1.0', id => 'tr-bad', source => '/s',
                              type => 't', traceparent => '00-nope',
                              tracestate => 'a=1', data => { case => 'trace' } });
    $redis->cmd('XADD', 'eb:{t}:target:trc', '*', 'event', $bad, 'rule', 'trace');
    $q = wait_reqs($api, '/trace', 4);
    my ($b) = grep { ($_->{headers}{'ce-id'} // '') eq 'tr-bad' } @$q;
    ok($b && !defined $b->{headers}{traceparent} && !defined $b->{headers}{tracestate},
       'trace, http: an invalid traceparent is not sent, nor its tracestate');
}

{
    # CloudEvents: binary carries ce-traceparent (the attribute) and the
    # W3C header; structured the attribute in the body and the header
    my $ev_in = { specversion => '1.0', id => 'ce-trace-1', source => '/s',
                  type => 'com.example.trace', traceparent => $TP,
                  tracestate => 'congo=t61rcWkgMzE', data => { a => 1 } };
    put_event($ev_in);
    my $b = wait_reqs($ce, '/trbin', 1)->[0] // { headers => {} };
    is($b->{headers}{traceparent}, $TP, 'trace, cloudevents binary: traceparent header');
    is($b->{headers}{tracestate}, 'congo=t61rcWkgMzE',
       'trace, cloudevents binary: tracestate header');
    is($b->{headers}{'ce-traceparent'}, $TP, 'trace, cloudevents binary: ce-traceparent');
    is(pct_decode($b->{headers}{'ce-tracestate'} // ''), 'congo=t61rcWkgMzE',
       'trace, cloudevents binary: ce-tracestate');

    my $s = wait_reqs($ce, '/trst', 1)->[0] // { headers => {} };
    is($s->{headers}{traceparent}, $TP, 'trace, cloudevents structured: traceparent header');
    is($s->{headers}{tracestate}, 'congo=t61rcWkgMzE',
       'trace, cloudevents structured: tracestate header');
    my $got = EBTest::json_decode($s->{body}) // {};
    is($got->{traceparent}, $TP, 'trace, cloudevents structured: the attribute in the body');
}

# =============================================================================
# 4. rate limit, retries, Retry-After, rejections, timeouts
# =============================================================================

{
    my $t0 = time;
    event(case => 'rated', i => $_) for 1 .. 20;
    my $r = wait_reqs($api, '/rated', 20, 15);
    is(scalar @$r, 20, 'rate: all 20 delivered');
    my $span = $r->[-1]{time} - $r->[0]{time};
    cmp_ok($span, '>=', 1.8, 'rate 10/s: 20 requests span at least 1.8 s');
    cmp_ok($span, '<', 4, 'rate 10/s: ... and not much more');
    my @gaps = map { $r->[$_]{time} - $r->[$_ - 1]{time} } 1 .. $#$r;
    my ($min) = sort { $a <=> $b } @gaps;
    cmp_ok($min, '>=', 0.05, 'rate 10/s: no two requests much closer than 100 ms');
    my %conns = map { $_->{conn} => 1 } @$r;
    cmp_ok(scalar keys %conns, '<=', 2, 'keep-alive: the 20 requests used at most 2 connections');
}

{
    my $id = event(case => 'flaky');
    ok(settled('flaky'), 'flaky: acknowledged');
    my $r = reqs($api, '/flaky');
    is(join(' ', map { $_->{status} } @$r), '503 503 200', 'flaky: 503, 503, then 200');
    is(scalar(grep { $_->{headers}{'ce-id'} eq $id } @$r), 3, 'flaky: the same event each time');
    is(scalar @{ dlq('flaky') }, 0, 'flaky: no dead letter');
}

{
    my $id = event(case => 'later');
    my $r1 = wait_reqs($api, '/later', 2, 10);
    my $r2 = wait_reqs($api, '/later2', 2, 10);
    is(join(' ', map { $_->{status} } @$r1), '503 200', 'Retry-After: 503 then 200');
    cmp_ok(($r1->[1]{time} // 0) - ($r1->[0]{time} // 0), '>=', 0.9,
           'Retry-After: 1 (seconds) honoured, not the 50 ms interval');
    is(join(' ', map { $_->{status} } @$r2), '429 200', 'Retry-After date: 429 then 200');
    cmp_ok(($r2->[1]{time} // 0) - ($r2->[0]{time} // 0), '>=', 0.9,
           'Retry-After as an HTTP-date (2 s ahead) honoured');
}

{
    my $id = event(case => 'bad');
    ok(wait_for(sub { @{ dlq('bad') } && @{ dlq('moved') } }, 10),
       '400 and 302: dead-lettered');
    sleep 0.3;
    my $r = reqs($api, '/bad');
    is(scalar @$r, 1, '400: exactly one request (no retry)');
    is(scalar @{ reqs($api, '/moved') }, 1, '302: exactly one request (no retry)');
    is(scalar @{ reqs($api, '/elsewhere') }, 0, '302: not followed');
    my $d = dlq('bad')->[0][1] // {};
    is((EBTest::json_decode($d->{event} // '') // {})->{id}, $id, '400: the dead letter holds the event');
    is($d->{status}, '400', '400: status in the dead letter');
    like($d->{error} // '', qr/HTTP 400/, '400: error in the dead letter');

    # the API is fixed: the dead letter goes back and is delivered
    $api->control({ paths => {
        '/bad'   => 200,
        '/moved' => { status => 302, headers => { Location => '/elsewhere' } },
        '/slow'  => { status => 200, delay => 2 },
    } });
    my $cmd = join ' ', map { "'$_'" } EBTest::Ebd::binary(), '-c', $cfgfile,
        '-r', $redis->addr, 'redrive', 't', 'bad';
    my $out = `$cmd 2>&1`;
    is($? >> 8, 0, 'redrive: exit 0') or diag $out;
    like($out, qr/redriven 1 dead letter from eb:\{t\}:dlq:bad to eb:\{t\}:target:bad/,
         'redrive: one dead letter moved back');
    my $again = wait_reqs($api, '/bad', 2, 10);
    is(join(' ', map { $_->{status} } @$again), '400 200', 'redrive: delivered on the next attempt');
    is(scalar @{ dlq('bad') }, 0, 'redrive: the dead-letter stream is empty');
    is($again->[-1]{headers}{'ce-id'}, $id, 'redrive: the same event (ce-id)');
}

{
    my $t0 = time;
    my $id = event(case => 'race');
    my @fast = map { event(case => 'fast', i => $_) } 1 .. 3;
    my $f = wait_reqs($api, '/fast', 3, 5);
    my $s = wait_reqs($api, '/slow', 1, 5);
    is(scalar @$f, 3, 'slow + fast: the fast target got its events');
    ok(@$s && $f->[-1]{time} < $s->[0]{time} + 1.5,
       'slow + fast: while the slow target still answers (2 s)');
    ok(settled('fast', 2), 'slow + fast: fast entries acknowledged before the slow one answers')
        or diag(time - $t0);
    ok(settled('slow', 10), 'slow + fast: the slow one is delivered too');
}

{
    my $id = event(case => 'tooslow');
    ok(wait_for(sub { @{ dlq('tooslow') } && @{ dlq('refused') } }, 15),
       'timeout and connection refused: dead-lettered after retries');
    my $d = dlq('tooslow')->[0][1] // {};
    like($d->{error} // '', qr/timed out/i, 'timeout: the error says so');
    is($d->{attempts}, 3, 'timeout: retried (2 retries after the first try)');
    my $c = dlq('refused')->[0][1] // {};
    like($c->{error} // '', qr/connect|refused/i, 'connection refused: the error says so');
}

# =============================================================================
# 5. a reload (SIGHUP): the targets are closed and opened again
# =============================================================================

{
    $ebd->reload;
    ok(wait_for(sub { $ebd->log =~ /configuration reloaded/ }, 15), 'reload: done');
    my $id = event(case => 'basic', n => 2);
    my $b = wait_reqs($api, '/basic', 2);
    is(scalar @$b, 2, 'reload: delivered after it');
    is($b->[1]{headers}{'ce-id'}, $id, 'reload: the new event');
    my $oid = event(case => 'oauth', i => 8);
    ok(wait_for(sub { grep { ($_->{headers}{'ce-id'} // '') eq $oid && $_->{status} == 200 }
                      @{ reqs($auth, '/secure') } }, 10),
       'reload: oauth2 target delivers (token cache of the new configuration)');
}

# =============================================================================
# 6. secrets
# =============================================================================

{
    my $log = $ebd->log;
    like($log, qr/debug/, 'ebd logged at debug');
    my @tokens = map { $_->{issued} } grep { $_->{issued} } @{ reqs($auth, '/token') };
    my %all = (%SECRET, basic_b64 => encode_base64("alice:$SECRET{basic_password}", ''),
               get_b64 => encode_base64('ebd%20get%2Fclient:gs-Secret%3Aget%2B%2F9', ''),
               map { ("token$_" => $tokens[$_]) } 0 .. $#tokens);
    my @dlq = map { @{ $redis->xrange("eb:{t}:dlq:$_") } } keys %{ $cfg->{targets} };
    my $dl = join "\n", map { join ' ', %{ $_->[1] } } @dlq;
    ok(scalar @dlq >= 4, 'there are dead letters to look at');
    for my $k (sort keys %all) {
        unlike($log, qr/\Q$all{$k}\E/, "ebd's log does not contain $k");
        unlike($dl, qr/\Q$all{$k}\E/, "no dead letter contains $k");
    }
    my $tr = $redis->cmd('XRANGE', 'eb:{t}:trace', '-', '+');
    my $trace = ref $tr eq 'ARRAY' ? join("\n", map { join ' ', @{ $_->[1] } } @$tr) : '';
    unlike($trace, qr/\Q$all{$_}\E/, "the trace does not contain $_") for sort keys %all;
}

$ebd->finish;
$ngx->finish;
EBTest::cleanup_all();
done_testing;
