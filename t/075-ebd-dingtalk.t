#!/usr/bin/perl
# ebd's dingtalk target (a DingTalk custom robot) end to end: nginx
# accepts the seed's DingTalk "new employee" event, ebd renders text,
# markdown and actionCard messages from the target's templates and posts
# them to a local robot endpoint that checks the signature the way
# DingTalk does (timestamp + HMAC-SHA256 sign on the URL); DingTalk's
# errcode in a 200 answer: 0 delivered, 130101 (too fast) retried, a
# signature or token error dead-lettered with DingTalk's message; the
# robot's rate limit (limit per window) holds; the access token and the
# secret never reach ebd's log.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use File::Temp ();
use EBTest qw(wait_for);
use EBTest::Peer;

plan skip_all => 'ebd not built' unless -x EBTest::Ebd::binary();

my $JSON = JSON::PP->new->utf8->canonical;
my $TOKEN = 'tok-9f2c-never-logged';
my $SECRET = 'SECd41d8cd98f00b204e9800998ecf8427e-never-logged';

my $robot = EBTest::Peer->start(control => {
    dingtalk => { path => '/robot/send', access_token => $TOKEN,
                  secret => $SECRET },
    paths => {
        '/robot/busy' => { seq => [
            { status => 200, type => 'application/json',
              body => '{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}' },
            { status => 200, type => 'application/json',
              body => '{"errcode":0,"errmsg":"ok"}' } ] },
        '/robot/limit' => { status => 200, type => 'application/json',
                            body => '{"errcode":0,"errmsg":"ok"}' },
    },
});
my $send = $robot->url("/robot/send?access_token=$TOKEN");

sub rule {
    my ($case, @targets) = @_;
    return { pattern => { data => { body => { case => [ $case ] } } },
             targets => [ map { { target => $_ } } @targets ] };
}

my $fast = { strategy => 'backoff', attempts => 5, interval => '50ms',
             max_interval => '100ms' };
# the markdown robot's secret comes from a file (ebd_secret.c)
my $secret_dir = File::Temp::tempdir('eb-075-XXXXXX', TMPDIR => 1, CLEANUP => 1);
EBTest::write_file("$secret_dir/robot.secret", "$SECRET\n");

my $cfg = {
    targets => {
        text => { type => 'dingtalk', url => $send, secret_env => 'EB_T_DT_SECRET',
                  msgtype => 'text',
                  variables => { name => '$.data.body.name', dept => '$.data.body.dept' },
                  text => "New employee: \${name} (\${dept}) \"welcome\"",
                  at => { atMobiles => [ '13800000000' ], isAtAll => JSON::PP::false } },
        md   => { type => 'dingtalk', url => $send,
                  secret_file => "$secret_dir/robot.secret",
                  msgtype => 'markdown',
                  variables => { name => '$.data.body.name', dept => '$.data.body.dept' },
                  title => 'New employee ${name}',
                  text => "### \${name}\n> department: \${dept}" },
        card => { type => 'dingtalk', url => $send, secret => $SECRET,
                  msgtype => 'actionCard',
                  variables => { name => '$.data.body.name', id => '$.id' },
                  title => 'Welcome', text => '${name} joined',
                  single_title => 'Open', single_url => 'https://hr.example/${id}' },
        badsign => { type => 'dingtalk', url => $send, secret => 'SECwrong',
                     msgtype => 'text', text => 'x', retry => $fast },
        notoken => { type => 'dingtalk', url => $robot->url('/robot/send?access_token=nope'),
                     secret => $SECRET, msgtype => 'text', text => 'x', retry => $fast },
        busy => { type => 'dingtalk', url => $robot->url("/robot/busy?access_token=$TOKEN"),
                  msgtype => 'text', text => 'busy', window => '1s', retry => $fast },
        limit => { type => 'dingtalk', url => $robot->url("/robot/limit?access_token=$TOKEN"),
                   msgtype => 'text', variables => { n => '$.data.body.n' },
                   text => 'n=${n}', limit => 3, window => '2s' },
    },
    buses => {
        t => { rules => {
            hire   => rule('hire', 'text', 'md', 'card'),
            bad    => rule('bad', 'badsign', 'notoken'),
            busy   => rule('busy', 'busy'),
            limit  => rule('limit', 'limit'),
        } },
    },
};

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /t { eventbridge_source t.src bus=t; }
    }
EOF
my $cfgfile = $ngx->dir . '/buses.json';
EBTest::write_file($cfgfile, $JSON->encode($cfg));
{
    my ($rc, $out) = $ngx->test_conf;
    is($rc, 0, 'nginx -t accepts dingtalk targets') or diag $out;
}
$ngx->start;

my $ebd = EBTest::Ebd->start(config => $cfgfile, redis => $redis,
                             name => 'ebd-075', level => 'debug',
                             env => { EB_T_DT_SECRET => $SECRET });
ok($ebd->alive && $ebd->log =~ /ebd: ready/, 'ebd is ready')
    or BAIL_OUT("ebd did not start:\n" . $ebd->log);

sub event {
    my (%body) = @_;
    my $r = $ngx->request(method => 'POST', path => '/t',
                          headers => [ 'Content-Type' => 'application/json' ],
                          body => $JSON->encode(\%body));
    is($r->{status}, 200, "event $body{case} accepted") or diag $r->{raw};
    return $r->{json}{eventId} // '';
}

sub reqs { $robot->requests(path => $_[0]) }
sub dlq { $redis->xrange("eb:{t}:dlq:$_[0]") }

# --- 1. the three message types, signed ---------------------------------------

{
    my $id = event(case => 'hire', name => "Zo\x{e9} \"Li\"", dept => 'R&D');
    ok(wait_for(sub { 3 <= grep { $_->{status} == 200 } @{ reqs('/robot/send') } }, 10),
       'three messages reached the robot');
    my @r = @{ reqs('/robot/send') };
    is(scalar(grep { $_->{sign_ok} } @r), 3, 'every request signed as DingTalk checks it');
    is(scalar(grep { ($_->{headers}{'content-type'} // '') =~ m{^application/json} } @r), 3,
       'Content-Type: application/json');
    my %by = map { my $m = EBTest::json_decode($_->{body}) // {}; ($m->{msgtype} // '?') => $m } @r;

    is_deeply($by{text}, { msgtype => 'text',
                           text => { content => "New employee: Zo\x{e9} \"Li\" (R&D) \"welcome\"" },
                           at => { atMobiles => [ '13800000000' ], isAtAll => JSON::PP::false } },
              'text: content from the template (escaped), "at" as given');
    is_deeply($by{markdown}, { msgtype => 'markdown',
                               markdown => { title => "New employee Zo\x{e9} \"Li\"",
                                             text => "### Zo\x{e9} \"Li\"\n> department: R&D" } },
              'markdown: title and text');
    is_deeply($by{actionCard}, { msgtype => 'actionCard',
                                 actionCard => { title => 'Welcome', text => "Zo\x{e9} \"Li\" joined",
                                                 singleTitle => 'Open',
                                                 singleURL => "https://hr.example/$id" } },
              'actionCard: title, text, singleTitle, singleURL');
    my $q = $r[0]{query} // '';
    like($q, qr/(?:^|&)timestamp=\d{13}(?:&|$)/, 'timestamp in ms on the URL');
    like($q, qr/(?:^|&)sign=[A-Za-z0-9%]+(?:&|$)/, 'sign on the URL, URL-encoded');
}

# --- 2. DingTalk's errcode ------------------------------------------------------

{
    event(case => 'bad');
    ok(wait_for(sub { @{ dlq('badsign') } && @{ dlq('notoken') } }, 10),
       'errcode 310000 and 300001: dead-lettered');
    sleep 0.3;
    my @bad = grep { ($_->{query} // '') !~ /access_token=nope/ && !$_->{sign_ok} }
              @{ reqs('/robot/send') };
    is(scalar @bad, 1, 'a wrong secret: one request, not retried');
    is(dlq('badsign')->[0][1]{error} // '', 'DingTalk errcode 310000: sign not match',
       'the dead letter says DingTalk\'s errcode and errmsg');
    like(dlq('notoken')->[0][1]{error} // '', qr/^DingTalk errcode 300001: token is not exist/,
         'an unknown token: dead-lettered with DingTalk\'s message');

    event(case => 'busy');
    ok(wait_for(sub { grep { $_->{status} == 200 } @{ reqs('/robot/busy') } and
                      @{ reqs('/robot/busy') } >= 2 }, 10), 'errcode 130101: tried again');
    my @b = @{ reqs('/robot/busy') };
    is(scalar @b, 2, 'errcode 130101 then 0: two requests');
    cmp_ok(($b[1]{time} // 0) - ($b[0]{time} // 0), '>=', 0.9,
           'errcode 130101: the retry waited for the window (1 s)');
    is(scalar @{ dlq('busy') }, 0, 'errcode 130101: no dead letter');
}

# --- 3. the rate limit: 3 messages per 2 s ---------------------------------------

{
    my $t0 = time;
    event(case => 'limit', n => $_) for 1 .. 9;
    ok(wait_for(sub { @{ reqs('/robot/limit') } >= 9 }, 20), 'nine messages sent');
    my @t = sort { $a <=> $b } map { $_->{time} } @{ reqs('/robot/limit') };
    my @over = grep { $t[$_ + 3] - $t[$_] < 1.95 } 0 .. $#t - 3;
    is(scalar @over, 0, 'never more than 3 messages in 2 s')
        or diag join ' ', map { sprintf '%.2f', $_ - $t0 } @t;
    cmp_ok($t[-1] - $t[0], '>=', 3.9, 'nine messages took at least two windows');
    is_deeply([ sort { $a <=> $b } map { (EBTest::json_decode($_->{body}) // {})->{text}{content} =~ /n=(\d+)/ ? $1 : 0 }
                @{ reqs('/robot/limit') } ], [ 1 .. 9 ], 'each message once');
    diag(sprintf 'rate limit: 9 messages in %.2f s', $t[-1] - $t[0]);
}

# --- 4. the configuration is checked ---------------------------------------------

for my $bad (
    [ { msgtype => 'image', text => 'x' }, qr/targets\.b\.msgtype: must be one of/,
      'an unknown msgtype' ],
    [ { msgtype => 'text' }, qr/targets\.b\.text: (?:is )?required|targets\.b: .*"text"/,
      'no text' ],
    [ { msgtype => 'text', text => 'x', limit => 0 }, qr/targets\.b\.limit/,
      'a limit of 0' ],
    [ { msgtype => 'text', text => '${nosuch}' }, qr/targets\.b\.text: .*nosuch/,
      'a template naming an unknown variable' ],
    [ { msgtype => 'markdown', text => 'x' }, qr/targets\.b\.title: required with msgtype "markdown"/,
      'markdown without a title' ],
    [ { msgtype => 'actionCard', text => 'x', title => 't' },
      qr/targets\.b\.single_title: required with msgtype "actionCard"/,
      'actionCard without its button' ],
) {
    my ($spec, $re, $what) = @$bad;
    my $file = $ngx->dir . '/bad.json';
    EBTest::write_file($file, $JSON->encode({
        targets => { b => { type => 'dingtalk', url => $send, %$spec } },
        buses => { t => { rules => { r => rule('x', 'b') } } } }));
    my $out = `'${\ EBTest::Ebd::binary()}' -t -c '$file' 2>&1`;
    isnt($? >> 8, 0, "ebd -t refuses $what");
    like($out, $re, "$what: the message names it") or diag $out;
}

my $log = $ebd->log;
unlike($log, qr/\Q$TOKEN\E|\Q$SECRET\E/, 'neither the access token nor the secret in ebd\'s log');
$ebd->finish;
$ngx->finish;
done_testing;
