#!/usr/bin/perl
# Bodies (and request parts) that must be refused: too large, malformed
# declared JSON, invalid UTF-8, JSON nested too deep. Each gets its exact
# status and a JSON body {"errorCode","errorMessage"}, appends nothing, and
# counts in eventbridge_events_rejected_total{reason=...}.
use strict;
use warnings;
use Test::More;
use EBTest;

my $KEY = 'eb:{rej}:events';

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        client_max_body_size 1k;
        client_body_buffer_size 256;

        location /hook { eventbridge_source s.rej bus=rej; }

        location /shallow {
            eventbridge_source s.rej bus=rej;
            eventbridge_max_json_depth 3;
        }

        location /status { eventbridge_status; }
    }
EOF
$ngx->start;

my $port = $ngx->port;
my @REASONS = qw(method address referer token body_too_large invalid_json
                 json_too_deep invalid_utf8 unavailable);

sub xlen { my $n = $redis->xlen($KEY); return ref $n ? 0 : $n // 0 }

# The rejections by reason, read by Prometheus's parser: in total
# (eventbridge_events_rejected_total), and as counted for the source
# ("source:REASON") and its bus ("bus:REASON").
sub metrics {
    my $m = $ngx->metrics;
    my %r;
    for (@REASONS) {
        $r{$_} = $m->{qq(eventbridge_events_rejected_total{reason="$_"})} // 0;
        $r{"source:$_"} = $m->{'eventbridge_source_events_rejected_total'
            . qq({bus="rej",reason="$_",source="s.rej"})} // 0;
        $r{"bus:$_"} = $m->{'eventbridge_bus_events_rejected_total'
            . qq({bus="rej",endpoint="source",reason="$_"})} // 0;
    }
    return \%r;
}

# The raw text of a chunked POST whose body is sent as the given chunks.
sub chunked_request {
    my ($path, $ctype, @chunks) = @_;
    my $req = "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . ($ctype ? "Content-Type: $ctype\r\n" : '')
            . "Transfer-Encoding: chunked\r\n\r\n";
    $req .= sprintf("%x\r\n%s\r\n", length $_, $_) for @chunks;
    return $req . "0\r\n\r\n";
}

# refused(NAME, STATUS, CODE, REASONS, REQUEST...): REASONS is the counter
# expected to grow by one (a list ref: any one of them), or undef if none.
sub refused {
    my ($name, $status, $code, $reason, %req) = @_;
    my $before = xlen();
    my $m0 = metrics();
    my $r = EBTest::http(port => $port, method => 'POST', path => '/hook',
                         %req);
    my $m1 = metrics();
    subtest "$name -> $status" => sub {
        is($r->{status}, $status, 'status') or diag $r->{raw} // $r->{error};
        like($r->{headers}{'content-type'} // '', qr{^application/json},
             'JSON content type');
        my $j = $r->{json};
        is(ref $j, 'HASH', 'body is a JSON object') or diag $r->{body};
        $j = {} unless ref $j eq 'HASH';
        is_deeply([sort keys %$j], ['errorCode', 'errorMessage'],
                  'exactly errorCode and errorMessage');
        if (ref $code) {
            like($j->{errorCode} // '', $code, 'errorCode');
        } else {
            is($j->{errorCode}, $code, 'errorCode');
        }
        ok(length($j->{errorMessage} // ''), 'non-empty errorMessage');
        is(xlen(), $before, 'nothing appended');

        my %delta = map { $_ => $m1->{$_} - $m0->{$_} } keys %$m1;
        my @grew = grep { $delta{$_} } @REASONS;
        is_deeply([map { $delta{"source:$_"} } @REASONS],
                  [map { $delta{$_} } @REASONS],
                  'the source\'s counters grew as the totals did');
        is_deeply([map { $delta{"bus:$_"} } @REASONS],
                  [map { $delta{$_} } @REASONS],
                  'the bus\'s counters grew as the totals did');
        if (!defined $reason) {
            is_deeply(\@grew, [], 'no rejection counter grew');
        } else {
            my @want = ref $reason ? @$reason : ($reason);
            is(scalar @grew, 1, 'exactly one rejection counter grew')
                or diag explain \%delta;
            ok(@grew && (grep { $_ eq $grew[0] } @want)
               && $delta{$grew[0]} == 1,
               "rejected_total{reason=\"@want\"} grew by one")
                or diag explain \%delta;
        }
    };
    return $r;
}

sub taken {
    my ($name, %req) = @_;
    my $before = xlen();
    my $r = EBTest::http(port => $port, method => 'POST', path => '/hook',
                         %req);
    subtest "$name -> 200" => sub {
        is($r->{status}, 200, 'status') or diag $r->{raw} // $r->{error};
        is(xlen(), $before + 1, 'one event appended');
    };
    return $r;
}

sub json_req { my ($body, $ct) = @_;
    return (body => $body, headers => ['Content-Type' => $ct // 'application/json']) }

# --- client_max_body_size ------------------------------------------------------

{
    taken('body of exactly client_max_body_size',
          body => 'a' x 1024, headers => ['Content-Type' => 'text/plain']);

    my $r = refused('Content-Length over client_max_body_size', 413,
                    'PayloadTooLarge', 'body_too_large',
                    body => 'a' x 1025,
                    headers => ['Content-Type' => 'text/plain']);
    like($r->{json}{errorMessage} // '', qr/client_max_body_size/,
         'message names client_max_body_size');

    refused('declared JSON over client_max_body_size', 413, 'PayloadTooLarge',
            'body_too_large',
            body => '{"a":"' . ('b' x 4000) . '"}',
            headers => ['Content-Type' => 'application/json']);

    taken('chunked body of exactly client_max_body_size',
          raw => chunked_request('/hook', 'text/plain', 'c' x 512, 'c' x 512));

    $r = refused('chunked body over client_max_body_size (one chunk)', 413,
                 'PayloadTooLarge', 'body_too_large',
                 raw => chunked_request('/hook', 'text/plain', 'c' x 2000));
    like($r->{json}{errorMessage} // '', qr/client_max_body_size/,
         'chunked: message names client_max_body_size');

    refused('chunked body over client_max_body_size (several chunks)', 413,
            'PayloadTooLarge', 'body_too_large',
            raw => chunked_request('/hook', 'application/json',
                                   '[' . ('1,' x 300), ('2,' x 300) . '3]'));

    refused('broken chunked encoding', 400, 'BadRequest', undef,
            raw => "POST /hook HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                 . "zz\r\nhello\r\n0\r\n\r\n");
}

# --- malformed declared JSON ----------------------------------------------------

{
    my @cases = (
        [ 'trailing comma', '{"a":1,}', 'application/json' ],
        [ 'premature end', '{"a":', 'application/json', qr/premature EOF/i ],
        [ 'bad literal', '{"a":tru}', 'application/json' ],
        [ 'unquoted key', '{a:1}', 'application/json; charset=utf-8' ],
        [ 'single quotes', "{'a':1}", 'Application/JSON' ],
        [ 'trailing garbage', '{"a":1} x', 'application/json' ],
        [ 'two values', '{} {}', 'application/json' ],
        [ 'comment', '{"a":1 /* c */}', 'application/json' ],
        [ 'leading zero', '[01]', 'application/json' ],
        [ 'bare word', 'hello', 'application/json' ],
        [ 'whitespace only', "  \r\n ", 'application/json' ],
        [ 'raw control character in string', qq({"a":"x\x01y"}),
          'application/json' ],
        [ 'bad escape', '{"a":"\\q"}', 'application/json' ],
        [ 'unclosed array, +json type', '[1,2',
          'application/cloudevents+json' ],
        [ '+json type with charset', '{"a" 1}',
          'application/vnd.api+json ; charset=UTF-8' ],
        [ 'text/json', '{,}', 'text/json' ],
        [ 'form feed as whitespace (not JSON whitespace)', qq({"a":1}\f),
          'application/json' ],
        [ 'vertical tab between tokens', qq({"a":\x0b1}), 'application/json' ],
    );

    for my $c (@cases) {
        my ($name, $body, $ct, $re) = @$c;
        my $r = refused("declared JSON, $name ($ct)", 400, 'InvalidJSON',
                        'invalid_json', json_req($body, $ct));
        my $msg = $r->{json}{errorMessage} // '';
        like($msg, qr/not valid JSON/i, "$name: message says JSON is invalid")
            or diag $msg;
        like($msg, qr/\bbyte \d+: \S{3,}/,
             "$name: message names the parse error and its byte offset")
            or diag $msg;
        like($msg, $re, "$name: message says why") if $re;
    }
}

# --- invalid UTF-8 in a non-JSON body ------------------------------------------

{
    my @cases = (
        [ 'text/plain with \xff', "abc\xffdef", 'text/plain', qr/offset 3/ ],
        [ 'text/plain, charset param', "\xfe", 'text/plain; charset=utf-8' ],
        [ 'form body, truncated sequence', "a=\xe5\xb0", 'application/x-www-form-urlencoded' ],
        [ 'overlong encoding', "x\xc0\xafy", 'text/plain' ],
        [ 'UTF-16 surrogate', "x\xed\xa0\x80y", 'text/plain' ],
        [ 'above U+10FFFF', "x\xf4\x90\x80\x80y", 'text/plain' ],
        [ 'no Content-Type', "\xff\xff", undef ],
        [ 'undeclared, looks like JSON', qq({"a":"\xff"}), undef ],
        [ 'non-JSON type, looks like JSON', qq([1,"\xff"]), 'text/plain' ],
    );
    for my $c (@cases) {
        my ($name, $body, $ct, $re) = @$c;
        my $r = refused("body not UTF-8: $name", 400, 'InvalidUTF8',
                        'invalid_utf8', body => $body,
                        headers => [defined $ct ? ('Content-Type' => $ct) : ()]);
        like($r->{json}{errorMessage} // '', $re, "$name: message names the offset")
            if $re;
    }
}

# --- invalid UTF-8 inside a JSON string -------------------------------------------

{
    my @cases = (
        [ 'byte \xff', qq({"a":"\xff"}) ],
        [ 'overlong "/"', qq({"a":"\xc0\xaf"}) ],
        [ 'overlong NUL', qq({"a":"\xc0\x80"}) ],
        [ 'overlong 3-byte', qq({"a":"\xe0\x80\xaf"}) ],
        [ 'UTF-16 surrogate', qq({"a":"\xed\xa0\x80"}) ],
        [ 'above U+10FFFF', qq({"a":"\xf4\x90\x80\x80"}) ],
        [ 'lead byte \xf5', qq({"a":"\xf5\x80\x80\x80"}) ],
        [ 'truncated sequence', qq({"a":"\xe5\xb0"}) ],
        [ 'lone continuation byte', qq({"a":"x\x80"}) ],
        [ 'in a key', qq({"\xc0\xaf":1}) ],
    );
    for my $c (@cases) {
        my ($name, $body) = @$c;
        refused("declared JSON, invalid UTF-8 in a string: $name", 400,
                qr/^Invalid(JSON|UTF8)$/, ['invalid_json', 'invalid_utf8'],
                json_req($body));
    }
    refused('undeclared JSON, overlong UTF-8 in a string', 400,
            qr/^Invalid(JSON|UTF8)$/, ['invalid_json', 'invalid_utf8'],
            body => qq({"a":"\xc0\xaf"}));
    refused('undeclared JSON, surrogate in a string', 400,
            qr/^Invalid(JSON|UTF8)$/, ['invalid_json', 'invalid_utf8'],
            body => qq(["\xed\xbf\xbf"]));
}

# --- invalid UTF-8 elsewhere --------------------------------------------------------

{
    refused('header value not UTF-8', 400, 'InvalidUTF8', 'invalid_utf8',
            body => '{}', headers => ['Content-Type' => 'application/json',
                                      'X-Bad' => "a\xffb"]);
    refused('query argument not UTF-8', 400, 'InvalidUTF8', 'invalid_utf8',
            path => '/hook?a=%ff', json_req('{}'));
    refused('query argument name not UTF-8', 400, 'InvalidUTF8', 'invalid_utf8',
            path => '/hook?%c0%af=1', json_req('{}'));
    refused('path not UTF-8', 400, 'InvalidUTF8', 'invalid_utf8',
            path => '/hook/%ed%a0%80', json_req('{}'));
}

# --- nesting depth ---------------------------------------------------------------------

sub arrays  { my $n = shift; return ('[' x $n) . (']' x $n) }
sub objects { my $n = shift; return ('{"k":' x $n) . '1' . ('}' x $n) }

{
    taken('arrays nested 64 deep (default bound)', json_req(arrays(64)));
    taken('objects nested 64 deep (default bound)', json_req(objects(64)));
    my $r = refused('arrays nested 65 deep', 400, 'JSONTooDeep',
                    'json_too_deep', json_req(arrays(65)));
    like($r->{json}{errorMessage} // '', qr/\b64\b/, 'message names the bound 64');
    refused('objects nested 65 deep', 400, 'JSONTooDeep', 'json_too_deep',
            json_req(objects(65)));
    refused('mixed nesting 65 deep', 400, 'JSONTooDeep', 'json_too_deep',
            json_req(('[{"a":' x 32) . '[1]' . ('}]' x 32)));
    refused('undeclared JSON nested 65 deep', 400, 'JSONTooDeep',
            'json_too_deep', body => arrays(65));
    refused('+json type nested 200 deep', 400, 'JSONTooDeep', 'json_too_deep',
            json_req(arrays(200), 'application/cloudevents+json'));

    taken('depth 3 with bound 3', path => '/shallow',
          json_req('{"a":{"b":{"c":1}}}'));
    taken('several depth-3 branches with bound 3', path => '/shallow',
          json_req('[[[1]],[[2]],{"x":[3]}]'));
    taken('brackets inside strings do not nest', path => '/shallow',
          json_req('{"a":"[[[[[[{{{{{{"}'));
    $r = refused('depth 4 with bound 3', 400, 'JSONTooDeep', 'json_too_deep',
                 path => '/shallow', json_req('{"a":{"b":{"c":[1]}}}'));
    like($r->{json}{errorMessage} // '', qr/\b3\b/, 'message names the bound 3');
    refused('empty arrays 4 deep with bound 3', 400, 'JSONTooDeep',
            'json_too_deep', path => '/shallow', json_req(arrays(4)));
    refused('deep and malformed: bound reported first or syntax', 400,
            qr/^(JSONTooDeep|InvalidJSON)$/, ['json_too_deep', 'invalid_json'],
            path => '/shallow', json_req('[[[[[1,'));
}

$ngx->finish;
done_testing;
