#!/usr/bin/perl
# Accepted requests, as the stored CloudEvent's data: the query string
# (decoded, repeated arguments joined), headers (lower-cased, repeated ones
# joined), the body as JSON or as a string (declared, undeclared, empty,
# spooled to a file, chunked), exact numbers, UTF-8, PUT, and
# $eventbridge_event_id in the access log.
use strict;
use warnings;
use utf8;
use Test::More;
use EBTest;
use Encode ();
use JSON::PP ();

my $KEY = 'eb:{bod}:events';

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    log_format ebids '$status $eventbridge_event_id $request_uri';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/logs/ids.log ebids;
        client_max_body_size 1m;
        client_body_buffer_size 1k;

        location /hook { eventbridge_source s.bod bus=bod; }
        location /put {
            eventbridge_source s.bod bus=bod;
            eventbridge_allow_methods POST PUT;
        }
        location /tok {
            eventbridge_source s.bod bus=bod;
            eventbridge_token tk;
        }
    }
EOF
$ngx->start;

my $port = $ngx->port;

sub xlen { my $n = $redis->xlen($KEY); return ref $n ? 0 : $n // 0 }

sub last_event {
    my $r = $redis->cmd('XREVRANGE', $KEY, '+', '-', 'COUNT', 1);
    return unless ref $r eq 'ARRAY' && @$r;
    my %f = @{ $r->[0][1] };
    return $f{event};
}

# taken(NAME, REQUEST...): 200, one event appended with the answered id and
# strictly valid JSON; returns (response, event, raw event text).
sub taken {
    my ($name, %req) = @_;
    my $before = xlen();
    my $r = EBTest::http(port => $port, method => 'POST', path => '/hook',
                         %req);
    my ($raw, $ev);
    subtest "$name -> 200" => sub {
        is($r->{status}, 200, 'status') or diag $r->{raw} // $r->{error};
        is(xlen(), $before + 1, 'one event appended');
        $raw = last_event();
        $ev = EBTest::json_decode($raw // '');
        ok(ref $ev eq 'HASH', 'stored event is strictly valid JSON')
            or diag show($raw);
        is($ev && $ev->{id}, $r->{json} && $r->{json}{eventId},
           'stored event has the answered id');
    };
    return ($r, $ev // {}, $raw // '');
}

# printable form of raw bytes, for diagnostics
sub show {
    my ($s) = @_;
    return 'undef' unless defined $s;
    $s =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    return $s;
}

sub body_of { my ($ev) = @_; return $ev->{data} ? $ev->{data}{body} : undef }

# the raw stored text of data.body: everything after "body": up to the
# two closing braces of data and the event
sub raw_body {
    my ($raw) = @_;
    return $raw =~ /"body":(.*)\}\}\z/s ? $1 : undef;
}

my $utf8 = sub { Encode::encode_utf8($_[0]) };

# --- query string -------------------------------------------------------------

{
    my (undef, $ev) = taken('query: decoding, +, repeats, empty values',
        path => '/hook?a=1&b=hello+world&c=%E5%B0%8F%E6%98%8E&a=2&empty='
              . '&flag&d=x%3Dy%26z&e=%2B1&a=3',
        body => '{}', headers => ['Content-Type' => 'application/json']);
    is_deeply($ev->{data}{queryString},
              { a => '1,2,3', b => 'hello world', c => '小明', empty => '',
                flag => '', d => 'x=y&z', e => '+1' },
              'data.queryString decoded, repeated names joined with ","');

    (undef, $ev) = taken('query: stray percent signs kept',
        path => '/hook?p=100%&q=%zz&r=%4&s=%%41', body => '');
    is_deeply($ev->{data}{queryString},
              { p => '100%', q => '%zz', r => '%4', s => '%A' },
              'malformed escapes are kept literally');

    (undef, $ev) = taken('query: encoded names, empty segments',
        path => '/hook?&&na%20me=v&x+y=z&&', body => '');
    is_deeply($ev->{data}{queryString}, { 'na me' => 'v', 'x y' => 'z' },
              'names decoded too; empty segments skipped');

    (undef, $ev) = taken('query: repeated empty values',
        path => '/hook?k=&k=&k=x', body => '');
    is_deeply($ev->{data}{queryString}, { k => ',,x' },
              'empty repeated values keep their places');

    (undef, $ev) = taken('no query', path => '/hook', body => '');
    is_deeply($ev->{data}{queryString}, {}, 'no query: {}');
    is($ev->{data}{path}, '/hook', 'data.path');
    is($ev->{data}{httpMethod}, 'POST', 'data.httpMethod');

    (undef, $ev) = taken('path percent-decoded',
        path => '/hook/%E5%B0%8F/a%20b?x=1', body => '');
    is($ev->{data}{path}, '/hook/小/a b', 'data.path decoded, without query');
}

# --- headers ---------------------------------------------------------------------

{
    my (undef, $ev) = taken('headers: case and repeats',
        body => '', headers => [
            'X-Custom-Header' => 'v1',
            'X-MULTI' => 'one',
            'x-multi' => 'two',
            'X-Multi' => 'three',
            'User-Agent' => $utf8->('Bot/1.0 小明'),
            'X-Quote' => 'a"b\\c',
            'Authorization' => 'Bearer secret',
            'Proxy-Authorization' => 'Basic c2VjcmV0',
            'Cookie' => 'sid=1',
            'Cookie' => 'sid=2',
        ]);
    my $h = $ev->{data}{headers} // {};
    is($h->{'x-custom-header'}, 'v1', 'names lower-cased');
    is($h->{'x-multi'}, 'one, two, three',
       'repeated headers joined with ", " in arrival order');
    ok(!grep({ /[A-Z]/ } keys %$h), 'no upper-case header names');
    is($h->{'user-agent'}, 'Bot/1.0 小明', 'UTF-8 header value round-trips');
    is($h->{'x-quote'}, 'a"b\\c', 'quotes and backslashes escaped properly');
    is($h->{host}, 'localhost', 'host header kept');
    ok(!exists $h->{authorization} && !exists $h->{'proxy-authorization'}
       && !exists $h->{cookie}, 'credentials dropped');
}

# --- non-JSON bodies become strings -----------------------------------------------

{
    my @cases = (
        [ 'text/plain', 'hello world', 'text/plain' ],
        [ 'text/plain with escapes',
          qq(line1\nline2\r\n\ttab "quoted" back\\slash \x01\x1f </script>),
          'text/plain; charset=utf-8' ],
        [ 'form-urlencoded stays encoded', 'a=1&b=two+words%21&c=%E5%B0%8F',
          'application/x-www-form-urlencoded' ],
        [ 'XML', '<?xml version="1.0"?><a b="c">d</a>', 'application/xml' ],
        [ 'undeclared text', 'just text', undef ],
        [ 'undeclared scalar-looking text', '123', undef ],
        [ 'undeclared "true"', 'true', undef ],
        [ 'undeclared quoted text', '"quoted"', undef ],
        [ 'undeclared, starts with { but not JSON', '{not json', undef ],
        [ 'undeclared, unclosed array', '[1,2', undef ],
        [ 'undeclared, JSON followed by text', '{"a":1} trailing', undef ],
        [ 'text/plain, starts with { but not JSON', '{"a":', 'text/plain' ],
        [ 'undeclared, JSON with a form feed', qq({"a":1}\f), undef ],
        [ 'undeclared, JSON with a vertical tab', qq([1,\x0b2]), undef ],
        [ 'undeclared UTF-8 text', $utf8->('小明 😀 é'), undef ],
        [ 'multipart-like text', "--b\r\nContent-Disposition: form-data; "
          . "name=\"a\"\r\n\r\n1\r\n--b--\r\n", 'multipart/form-data; boundary=b' ],
    );
    for my $c (@cases) {
        my ($name, $body, $ct) = @$c;
        my (undef, $ev) = taken("string body: $name", body => $body,
            headers => [defined $ct ? ('Content-Type' => $ct) : ()]);
        my $b = body_of($ev);
        ok(defined $b && !ref $b, "$name: data.body is a JSON string");
        is($utf8->($b // ''), $body, "$name: data.body is the body text")
            or diag show($b);
    }
}

# --- empty bodies ---------------------------------------------------------------------

{
    for my $c ([ 'no Content-Type', [] ],
               [ 'text/plain', ['Content-Type' => 'text/plain'] ])
    {
        my (undef, $ev, $raw) = taken("empty body, $c->[0]", body => '',
                                      headers => $c->[1]);
        is(body_of($ev), '', "empty body ($c->[0]) is \"\"");
        is(raw_body($raw), '""', "empty body ($c->[0]) stored as \"\"");
    }
    my (undef, $ev) = taken('no body at all', body => undef);
    is(body_of($ev), '', 'POST without a body: ""');
}

# --- JSON bodies stay JSON --------------------------------------------------------------

{
    my (undef, $ev) = taken('undeclared object',
                            body => '{"x":1,"y":[true,null,"s"]}');
    is_deeply(body_of($ev), { x => 1, y => [JSON::PP::true, undef, 's'] },
              'undeclared {...}: JSON');
    ok(JSON::PP::is_bool(body_of($ev)->{y}[0]), 'booleans stay booleans');

    (undef, $ev) = taken('undeclared array with whitespace around',
                         body => " \r\n\t[1, 2, 3]\n\n ");
    is_deeply(body_of($ev), [1, 2, 3], 'undeclared [...]: JSON');

    (undef, $ev) = taken('text/plain that is JSON',
                         body => '{"a":1}',
                         headers => ['Content-Type' => 'text/plain']);
    is_deeply(body_of($ev), { a => 1 },
              'non-JSON type, starts with { and parses: JSON');

    for my $ct ('application/json', 'application/json; charset=utf-8',
                'application/cloudevents+json', 'TEXT/JSON')
    {
        (undef, $ev) = taken("declared $ct", body => '{"k":"v"}',
                             headers => ['Content-Type' => $ct]);
        is_deeply(body_of($ev), { k => 'v' }, "$ct: JSON object");
    }

    (undef, $ev) = taken('declared scalar', body => ' 42 ',
                         headers => ['Content-Type' => 'application/json']);
    is(body_of($ev), 42, 'declared JSON scalar stays a number');
    (undef, $ev) = taken('declared string', body => '"hi"',
                         headers => ['Content-Type' => 'application/json']);
    is(body_of($ev), 'hi', 'declared JSON string');
    (undef, $ev) = taken('declared null', body => 'null',
                         headers => ['Content-Type' => 'application/json']);
    ok(exists $ev->{data}{body} && !defined $ev->{data}{body},
       'declared JSON null');
}

# --- exact numbers and text ----------------------------------------------------------

{
    my $body = qq({\n  "a": 3.0e2,\n  "b": 12345678901234567890,\n)
             . qq(  "c": -0.0, "d": 1E+400, "e": 0.1000, "f": -12e-3,\n)
             . qq(  "g": [ 1.50 , 100000000000000000000000000001 ]\n});
    my $compact = '{"a":3.0e2,"b":12345678901234567890,"c":-0.0,"d":1E+400,'
                . '"e":0.1000,"f":-12e-3,"g":[1.50,100000000000000000000000000001]}';
    my (undef, $ev, $raw) = taken('numbers keep their text', body => $body,
        headers => ['Content-Type' => 'application/json']);
    is(raw_body($raw), $compact,
       'stored body: numbers byte-exact, whitespace between tokens removed')
        or diag show($raw);
    like($raw, qr/"a":3\.0e2,/, '3.0e2 kept as written');
    like($raw, qr/"b":12345678901234567890,/,
         '12345678901234567890 kept as written');

    (undef, $ev, $raw) = taken('undeclared numbers keep their text',
                               body => '[3.0e2, 12345678901234567890]');
    is(raw_body($raw), '[3.0e2,12345678901234567890]',
       'undeclared array: numbers byte-exact');

    my $s = '{"s" : "a  b , c : [ ] { }", "t":"x\\" y  \\\\ ", "u":"\\u5c0f\\n",'
          . ' "v" : "\\\\"  ,  "w" : [ "\\\\\\"" , "\\/" ] }';
    (undef, $ev, $raw) = taken('whitespace and escapes inside strings',
        body => $s, headers => ['Content-Type' => 'application/json']);
    is(raw_body($raw),
       '{"s":"a  b , c : [ ] { }","t":"x\\" y  \\\\ ","u":"\\u5c0f\\n",'
       . '"v":"\\\\","w":["\\\\\\"","\\/"]}',
       'strings untouched, escapes verbatim');
    is_deeply(body_of($ev),
              { s => 'a  b , c : [ ] { }', t => 'x" y  \\ ', u => "小\n",
                v => '\\', w => ['\\"', '/'] },
              'strings decode to their values');
}

# --- UTF-8 ---------------------------------------------------------------------------------

{
    my $obj = { name => '小明', emoji => '😀', mix => 'é ß 👍🏽 𝄞' };
    my $json = JSON::PP->new->utf8->canonical->encode($obj);
    my (undef, $ev, $raw) = taken('UTF-8 JSON body', body => $json,
        headers => ['Content-Type' => 'application/json; charset=utf-8']);
    is_deeply(body_of($ev), $obj, 'UTF-8 JSON values round-trip');
    ok(index($raw, $utf8->('"name":"小明"')) >= 0,
       'stored as UTF-8 text, not re-escaped');

    (undef, $ev) = taken('UTF-8 text body', body => $utf8->('小明说：你好 😀'),
                         headers => ['Content-Type' => 'text/plain']);
    is(body_of($ev), '小明说：你好 😀', 'UTF-8 string body round-trips');

    (undef, $ev) = taken('UTF-8 query',
        path => '/hook?name=%E5%B0%8F%E6%98%8E&e=%F0%9F%98%80', body => '');
    is_deeply($ev->{data}{queryString}, { name => '小明', e => '😀' },
              'UTF-8 query arguments round-trip');
}

# --- bodies spooled to a file, chunked bodies ---------------------------------------------

{
    my $text = join '', map { sprintf "line %06d: %s\n", $_, 'x' x 40 } 1 .. 4000;
    my (undef, $ev) = taken('200 KB text body (spooled to a file)',
        body => $text, headers => ['Content-Type' => 'text/plain']);
    ok(body_of($ev) eq $text, 'large text body stored exactly')
        or diag 'length ' . length(body_of($ev) // '') . ' vs ' . length $text;

    my $big = { items => [ map { { n => $_, s => "v$_" } } 1 .. 3000 ] };
    my $bj = JSON::PP->new->canonical->encode($big);
    (undef, $ev) = taken('large JSON body (spooled to a file)',
        body => $bj, headers => ['Content-Type' => 'application/json']);
    is_deeply(body_of($ev), $big, 'large JSON body stored exactly');

    my $chunked = "POST /hook?via=chunked HTTP/1.1\r\nHost: localhost\r\n"
                . "Connection: close\r\nContent-Type: application/json\r\n"
                . "Transfer-Encoding: chunked\r\n\r\n";
    $chunked .= sprintf("%x\r\n%s\r\n", length $_, $_)
        for '{"a":', ' [1,', '2,3], "b":"', $utf8->('小'), $utf8->('明"}');
    $chunked .= "0\r\n\r\n";
    (undef, $ev) = taken('chunked JSON body in five chunks', raw => $chunked);
    is_deeply(body_of($ev), { a => [1, 2, 3], b => '小明' },
              'chunked body reassembled');

    my $cbig = "POST /hook HTTP/1.1\r\nHost: localhost\r\n"
             . "Connection: close\r\nContent-Type: text/plain\r\n"
             . "Transfer-Encoding: chunked\r\n\r\n";
    my @parts = map { substr($text, $_ * 5000, 5000) } 0 .. int((length($text) - 1) / 5000);
    $cbig .= sprintf("%x\r\n%s\r\n", length $_, $_) for @parts;
    $cbig .= "0\r\n\r\n";
    (undef, $ev) = taken('large chunked text body', raw => $cbig);
    ok(body_of($ev) eq $text, 'large chunked body stored exactly');
}

# --- JSON that readers would disagree on (issue 9): refused -------------------------------

{
    my $json = ['Content-Type' => 'application/json'];
    my @cases = (
        [ 'a string left open after the value', '{"a":1}"x' ],
        [ 'a lone low surrogate escape', '{"a":"\udc00"}' ],
        [ 'a lone high surrogate escape', '{"a":"\ud800"}' ],
        [ 'a high surrogate before a non-surrogate', '["\ud800\u0041"]' ],
        [ 'a key twice', '{"amount":5,"amount":5000}' ],
        [ 'a key twice, once escaped', '{"a":1,"\u0061":2}' ],
        [ 'a key twice in a nested object', '{"d":{"k":1,"k":2}}' ],
        [ 'U+0000 in a key', '{"a\u0000":1,"a":2}' ],
    );
    for my $c (@cases) {
        my ($name, $body) = @$c;
        my $before = xlen();
        my $r = EBTest::http(port => $port, method => 'POST', path => '/hook',
                             body => $body, headers => $json);
        subtest "declared JSON, $name -> 400 InvalidJSON" => sub {
            is($r->{status}, 400, 'status') or diag $r->{raw} // $r->{error};
            my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
            is_deeply([sort keys %$j], ['errorCode', 'errorMessage'],
                      'exactly errorCode and errorMessage');
            is($j->{errorCode}, 'InvalidJSON', 'errorCode');
            ok(length($j->{errorMessage} // ''), 'non-empty errorMessage');
            is(xlen(), $before, 'nothing appended');
        };
    }

    # a pair is one character; the same key in sibling objects is fine
    my (undef, $ev) = taken('a surrogate pair, keys repeated across objects',
        body => '{"e":"\ud83d\ude00","l":[{"k":1},{"k":2}],"o":{"k":3}}',
        headers => $json);
    is(body_of($ev) && body_of($ev)->{e}, "\x{1F600}", 'the pair decoded');

    # undeclared, it is no JSON: kept as the string it is
    (undef, $ev) = taken('undeclared, a key twice', body => '{"a":1,"a":2}');
    is(body_of($ev), '{"a":1,"a":2}', 'stored as a string');
}

# --- PUT, event id in the access log -------------------------------------------------------

{
    my ($r, $ev) = taken('PUT where allowed', method => 'PUT',
        path => '/put?m=put', body => '{"p":1}',
        headers => ['Content-Type' => 'application/json']);
    is($ev->{data}{httpMethod}, 'PUT', 'data.httpMethod PUT');
    is($ev->{data}{path}, '/put', 'data.path /put');
    is_deeply(body_of($ev), { p => 1 }, 'PUT body');

    my $marker = 'logmark=' . int(rand 1e9);
    ($r) = taken('request for the access log', path => "/hook?$marker",
                 body => '{}', headers => ['Content-Type' => 'application/json']);
    my $id = $r->{json} ? $r->{json}{eventId} : 'none';

    my $rej = EBTest::http(port => $port, path => "/tok?$marker-rejected",
                           body => '{}');
    is($rej->{status}, 401, 'a rejected request for the access log');

    my $log = "$ngx->{dir}/logs/ids.log";
    my $read = sub { open my $fh, '<', $log or return ''; local $/; <$fh> };
    EBTest::wait_for(sub { $read->() =~ /\Q$marker-rejected\E/ }, 5);
    my $text = $read->();
    my ($line) = grep { /\Q$marker\E$/ } split /\n/, $text;
    is($line, "200 $id /hook?$marker",
       '$eventbridge_event_id in the access log is the answered eventId');
    ($line) = grep { /\Q$marker-rejected\E$/ } split /\n/, $text;
    is($line, "401 - /tok?$marker-rejected",
       '$eventbridge_event_id is empty for a rejected request');
}

$ngx->finish;
done_testing;
