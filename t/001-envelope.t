#!/usr/bin/perl
# The CloudEvent an accepted webhook becomes, field by field, against the
# seed's DingTalk example. Its trace context: a valid W3C traceparent
# header (and tracestate) kept as the distributed tracing extension's
# attributes, an invalid one ignored (never a 400), a new trace per event
# without one; none with eventbridge_trace_context off.
use strict;
use warnings;
use Test::More;
use EBTest;

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_region cn-hangzhou;
    eventbridge_account 1148;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /webhook/putEvents {
            eventbridge_source my.dingtalk bus=chenyangbus;
            eventbridge_token s3cret;
        }
        location /hook { eventbridge_source my.hook bus=tracebus; }
        location /notrace {
            eventbridge_source my.hook bus=tracebus;
            eventbridge_trace_context off;
        }
    }
EOF
$ngx->start;

open my $fh, '<:raw', 't/data/dingtalk_user_add_org.json' or die $!;
my $body = do { local $/; <$fh> };

my $r = $ngx->request(method => 'POST',
    path => '/webhook/putEvents?token=s3cret&dept=r%26d&x=a+b',
    headers => ['Content-Type' => 'application/json',
                'Authorization' => 'Bearer secret',
                'Cookie' => 'session=1',
                'X-Dingtalk-Trace' => 't-1'],
    body => $body);

is($r->{status}, 200, 'accepted with 200');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON answer');
my $id = $r->{json}{eventId} // '';
like($id, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
     'answer holds a v4 UUID event id');

my $entries = $redis->xrange('eb:{chenyangbus}:events');
is(scalar @$entries, 1, 'one entry in eb:{chenyangbus}:events');
my $ev = EBTest::json_decode($entries->[0][1]{event}) // {};
ok(%$ev, 'field "event" holds JSON');

is($ev->{specversion}, '1.0', 'specversion');
is($ev->{id}, $id, 'id is the answered event id');
is($ev->{source}, 'my.dingtalk', 'source is the source name');
is($ev->{type}, 'eventbridge:Events:HTTPEvent', 'type');
is($ev->{subject},
   'acs:eventbridge:cn-hangzhou:1148:eventbus/chenyangbus/eventsource/my.dingtalk',
   'subject');
is($ev->{datacontenttype}, 'application/json', 'datacontenttype');
like($ev->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/,
     'time: RFC 3339, milliseconds, offset');
like($ev->{aliyunpublishtime}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
     'aliyunpublishtime: RFC 3339, milliseconds, UTC');
is($ev->{aliyuneventbusname}, 'chenyangbus', 'aliyuneventbusname');
is($ev->{aliyunregionid}, 'cn-hangzhou', 'aliyunregionid');
is($ev->{aliyunaccountid}, '1148', 'aliyunaccountid');
is($ev->{aliyunpublishaddr}, '127.0.0.1', 'aliyunpublishaddr');

my $d = $ev->{data} // {};
is($d->{path}, '/webhook/putEvents', 'data.path');
is($d->{httpMethod}, 'POST', 'data.httpMethod');
is_deeply($d->{queryString}, { dept => 'r&d', x => 'a b' },
          'data.queryString decoded, without token');
is($d->{headers}{'x-dingtalk-trace'}, 't-1', 'data.headers carries headers');
is($d->{headers}{'content-type'}, 'application/json', 'content-type header');
ok(!exists $d->{headers}{authorization}, 'Authorization dropped');
ok(!exists $d->{headers}{cookie}, 'Cookie dropped');
unlike($entries->[0][1]{event}, qr/s3cret|Bearer secret|session=1/,
       'no credential anywhere in the event');

my $seed = EBTest::json_decode($body);
is_deeply($d->{body}, $seed, 'data.body is the JSON body, unchanged');
is($d->{body}{name}, "\x{5c0f}\x{660e}", 'UTF-8 name round-trips');
ok(JSON::PP::is_bool($d->{body}{active}) && $d->{body}{active},
   'booleans stay booleans');
is(ref $d->{body}{department}, 'ARRAY', 'arrays stay arrays');

like($ev->{traceparent} // '', qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
     'no traceparent header: a new trace started');
ok(!exists $ev->{tracestate}, 'no traceparent header: no tracestate');

# --- trace context ----------------------------------------------------------

my $TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
my $new_tp = qr/^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-01$/;

# POSTs to $path with the headers; returns the stored event
sub hook {
    my ($path, @h) = @_;
    my $r = $ngx->request(method => 'POST', path => $path,
                          headers => [ 'Content-Type' => 'application/json', @h ],
                          body => '{"a":1}');
    is($r->{status}, 200, "$path accepted (@h)") or diag $r->{raw};
    my $id = $r->{json}{eventId} // '';
    for my $e (@{ $redis->xrange('eb:{tracebus}:events') }) {
        my $ev = EBTest::json_decode($e->[1]{event}) // {};
        return $ev if ($ev->{id} // '') eq $id;
    }
    return {};
}

{
    my $ev = hook('/hook', traceparent => $TP,
                  tracestate => 'rojo=00f067aa0ba902b7, congo=t61rcWkgMzE');
    is($ev->{traceparent}, $TP, 'traceparent header kept in the event');
    is($ev->{tracestate}, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
       'tracestate header kept (optional whitespace dropped)');
    is($ev->{data}{headers}{traceparent}, $TP, 'and in data.headers, as any header');

    $ev = hook('/hook', TraceParent => $TP);
    is($ev->{traceparent}, $TP, 'the header name in any case');
    ok(!exists $ev->{tracestate}, 'no tracestate header: none');

    my $later = '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more';
    $ev = hook('/hook', traceparent => $later);
    is($ev->{traceparent}, $later, 'a later version is passed on as it came');

    # without: a new trace each time
    my @tp = map { hook('/hook')->{traceparent} // '' } 1 .. 5;
    is(scalar(grep { /$new_tp/ } @tp), 5, 'without: five valid new traceparents');
    my %trace = map { (substr($_, 3, 32) => 1) } @tp;
    my %parent = map { (substr($_, 36, 16) => 1) } @tp;
    is(scalar keys %trace, 5, 'without: five different trace-ids');
    is(scalar keys %parent, 5, 'without: five different parent-ids');

    # invalid ones are ignored: 200, a new trace, their tracestate dropped
    for my $bad ('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
                 '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
                 '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
                 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
                 '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x',
                 '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
                 'x' x 300) {
        $ev = hook('/hook', traceparent => $bad, tracestate => 'congo=1');
        like($ev->{traceparent} // '', $new_tp,
             'invalid traceparent ignored, a new trace: ' . substr($bad, 0, 60));
        ok(!exists $ev->{tracestate}, 'invalid traceparent: its tracestate dropped');
    }

    $ev = hook('/hook', traceparent => $TP, traceparent => $TP);
    like($ev->{traceparent} // '', $new_tp, 'two traceparent headers: a new trace');
    isnt($ev->{traceparent}, $TP, 'two traceparent headers: neither kept');

    $ev = hook('/hook', traceparent => $TP, tracestate => 'Bad=1');
    is($ev->{traceparent}, $TP, 'malformed tracestate: the traceparent kept');
    ok(!exists $ev->{tracestate}, 'malformed tracestate: dropped');

    $ev = hook('/notrace', traceparent => $TP, tracestate => 'congo=1');
    ok(!exists $ev->{traceparent} && !exists $ev->{tracestate},
       'eventbridge_trace_context off: no trace attributes');
    is($ev->{data}{headers}{traceparent}, $TP,
       'eventbridge_trace_context off: the header in data.headers still');
}

$ngx->finish;
done_testing;
