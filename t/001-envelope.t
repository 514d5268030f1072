#!/usr/bin/perl
# The CloudEvent an accepted webhook becomes, field by field, against the
# seed's DingTalk example.
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

$ngx->finish;
done_testing;
