#!/usr/bin/perl
# The README's demo command, one shot (DEMO_ONESHOT=1, free ports): the
# seed's DingTalk webhook goes through nginx, Redis and ebd into a row of
# hr.user_info in MariaDB and a call of the onboarding API, and the trace
# shows both deliveries. Runs conf/demo itself, with the default build.
use strict;
use warnings;
use utf8;
use Test::More;
use EBTest;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

plan skip_all => 'the demo runs the default build (build/), not this one'
    if $ENV{TEST_EB_SAN} || (defined $ENV{TEST_EB_MODULE} && $ENV{TEST_EB_MODULE} eq '')
       || !-x 'build/ebd' || !-f 'build/nginx/objs/ngx_http_eventbridge_module.so';

my %env = (DEMO_ONESHOT => 1,
           DEMO_PORT => EBTest::free_port(), DEMO_API_PORT => EBTest::free_port(),
           DEMO_REDIS_PORT => EBTest::free_port(), DEMO_MYSQL_PORT => EBTest::free_port(),
           DEMO_ROBOT_PORT => EBTest::free_port());
local @ENV{keys %env} = values %env;
my $out = `timeout 180 bash conf/demo 2>&1`;
my $rc = $? >> 8;
utf8::decode($out);

is($rc, 0, 'the demo ran and stopped by itself') or diag $out;
my ($id) = $out =~ /"eventId":"([0-9a-f-]{36})"/;
ok($id, 'the webhook was accepted');
like($out, qr/\$:\*\*\*:\$5RU\*\*\*QhP\/pK\*\*\+4A==\ttrue\tfalse\t1411\*\*\*\*46379\t小明/,
     'hr.user_info has the new employee\'s row');
like($out, qr/"body":\{"welcome":"小明","id":"1411\*\*\*\*46379"\}/,
     'the onboarding API got the templated welcome');
like($out, qr/^the DingTalk robot received:\n\{"msgtype":"markdown","markdown":\{"title":"New employee 小明","text":"### Welcome, 小明\\n> user id 1411\*\*\*\*46379, added in DingTalk"\}\}$/m,
     'the DingTalk robot got the signed markdown message');
like($out, qr/delivered\s+target hr-robot\s+attempt 1\s+status 200 .*event \Q$id\E/, 'trace: the robot');
like($out, qr/accepted\s+source my\.dingtalk .*rules new-employee/, 'trace: accepted');
like($out, qr/^the console's events: \{"bus":"demo","items":\[\{"entry":"[0-9-]+","time":\d+,"id":"\Q$id\E"/m,
     'the console API lists the event');
like($out, qr/delivered\s+target user-info-mysql\s+attempt 1 .*event \Q$id\E/, 'trace: the row');
like($out, qr/delivered\s+target onboarding-api\s+attempt 1\s+status 200 .*event \Q$id\E/, 'trace: the API call');
like($out, qr/^the console's page and charts: 200 200$/m,
     'the console\'s page and Chart.js (vendor/chart.js) are served');
my ($s1) = $out =~ /^signed webhook: \{"eventId":"([0-9a-f-]{36})"\}$/m;
ok($s1, 'a signed webhook (Standard Webhooks) is accepted') or diag $out;
like($out, qr/^signed webhook, sent again: \{"eventId":"\Q${\ ($s1 \/\/ 'none')}\E"\}$/m,
     'its retry gets the same event id');
like($out, qr/^signed webhook, body changed after signing: \{"errorCode":"InvalidSignature","errorMessage":"[^"]*bad signature/m,
     'a tampered body: 401 InvalidSignature');
like($out, qr/^events stored for webhook-id \S+: 1$/m, 'one event stored for the two posts');
like($out, qr/demo: stopped/, 'everything it started is stopped');

done_testing;
