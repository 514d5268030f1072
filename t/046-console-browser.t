#!/usr/bin/perl
# The console's pages in a real browser: headless Chromium (Debian's
# chromium + chromium-driver, driven by t/bin/console-browser through
# python3-selenium) against real nginx, Redis, ebd and an HTTP peer. The
# seed's DingTalk event goes to two targets, one of which fails it into a
# dead letter; a hostile event carries markup. In the browser: the
# overview's numbers equal ebd's counters in Redis and the charts are
# drawn; the seed event is found by id and its attempts are the trace's;
# the hostile event renders as text and runs nothing; the configuration
# page holds no secret; the dead letter is inspected and redriven from
# the page, the peer receives it and the event page shows it delivered.
# The pages run under the console's CSP without an error. Screenshots go
# to $TEST_EB_SCREENSHOTS when set (docs/console/: `make
# console-screenshots`), else to a temporary directory.
use strict;
use warnings;
use utf8;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Cwd qw(abs_path);
use Time::HiRes qw(time);
use EBTest qw(wait_for write_file slurp);
use EBTest::Peer;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $JSON = JSON::PP->new->utf8->canonical;
my $EBD = EBTest::Ebd::binary();
my $CHART = '/usr/share/javascript/chart.js';
plan skip_all => "ebd not built ($EBD)" unless -x $EBD;

# Chromium is a big dependency: a developer without it is told so; CI
# (CI=true) has it from .ci/deps and must run this
my @missing = grep { !-e $_->[1] } (
    [ chromium => '/usr/bin/chromium' ], [ 'chromium-driver' => '/usr/bin/chromedriver' ],
    [ 'libjs-chart.js' => "$CHART/chart.min.js" ], [ python3 => '/usr/bin/python3' ]);
push @missing, [ 'python3-selenium' ]
    if !@missing && system('/usr/bin/python3', '-c', 'import selenium') != 0;
if (@missing) {
    my $what = join ', ', map { $_->[0] } @missing;
    plan skip_all => "needs $what (make deps)" if ($ENV{CI} // '') ne 'true';
    fail("the browser test needs $what (.ci/deps)");
    done_testing;
    exit;
}

my @SECRETS = qw(SECRET-key-1 SECRET-hdr-2 SECRET-q-3 SECRET-tok-4 SECRET-pw-5);
my $BUS = 'demo';

my $dir = tempdir('eb-046-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $redis = EBTest::Redis->start;
my $peer = EBTest::Peer->start(control => {
    paths => { '/onboarding' => 200,
               # two failures each dead-letter both events; a redrive is taken
               '/crm' => { seq => [ 500, 500, 500, 500, 200 ] } },
});

my $fast = { strategy => 'backoff', attempts => 1, interval => '20ms',
             max_interval => '40ms' };
my $cfg = {
    connections => {
        'crm-key' => { type => 'api_key', header => 'X-Api-Key', value => 'SECRET-key-1',
                       insecure => JSON::PP::true },
    },
    targets => {
        onboarding => { type => 'http', url => $peer->url('/onboarding'), retry => $fast },
        crm => { type => 'http', url => $peer->url('/crm') . '?token=SECRET-q-3',
                 headers => { Authorization => 'Bearer SECRET-hdr-2' },
                 connection => 'crm-key', retry => $fast },
        audit => { type => 'mysql', host => '127.0.0.1', port => 1, user => 'eb',
                   password => 'SECRET-pw-5', database => 'd', table => 't',
                   columns => { id => '$.id' } },
    },
    buses => {
        $BUS => { rules => {
            'new-employee' => {
                description => 'a new DingTalk employee',
                pattern => { source => [ 'my.dingtalk' ],
                             data => { body => { syncAction => [ 'user_add_org' ] } } },
                targets => [ { target => 'onboarding' }, { target => 'crm' } ] },
            notes => { pattern => { source => [ 'my.notes' ] },
                       targets => [ { target => 'onboarding' }, { target => 'crm' } ] },
            never => { pattern => { source => [ 'nobody' ] },
                       targets => [ { target => 'audit' } ] },
        } },
    },
};
write_file("$dir/buses.json", $JSON->encode($cfg));

# the console's root as the Debian package lays it out: the tree's files
# and vendor/chart.js, a symlink to Debian's Chart.js
my $root = "$dir/console";
mkdir $root;
mkdir "$root/vendor";
for my $f (glob 'src/console/*') {
    symlink(abs_path($f), "$root/" . ($f =~ s{.*/}{}r)) or die "symlink $f: $!";
}
symlink($CHART, "$root/vendor/chart.js") or die "symlink: $!";

my $ngx = EBTest::Nginx->new(redis => $redis, http => <<"EOF");
    eventbridge_redis %%REDIS%%;
    eventbridge_config $dir/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /webhook/putEvents {
            eventbridge_source my.dingtalk bus=$BUS;
            eventbridge_token SECRET-tok-4;
        }
        location = /notes { eventbridge_source my.notes bus=$BUS; }
        location /console/ {
            eventbridge_console root=$root;
            allow 127.0.0.1;
            deny all;
        }
    }
EOF
$ngx->start;
my $ebd = EBTest::Ebd->start(config => "$dir/buses.json", redis => $redis);
like($ebd->log, qr/ebd: ready/, 'ebd ready');

sub post {
    my ($path, $body) = @_;
    my $r = $ngx->request(method => 'POST', path => $path, body => $body,
                          headers => [ 'Content-Type' => 'application/json' ]);
    die "POST $path: $r->{status} $r->{body}" unless $r->{status} == 200;
    return EBTest::json_decode($r->{body})->{eventId};
}

my $t0 = int(time * 1000);
my $seed = post('/webhook/putEvents?token=SECRET-tok-4',
                slurp('t/data/dingtalk_user_add_org.json'));
my $hostile = post('/notes', $JSON->encode({
    note => '<script>window.__x=1</script>',
    attr => '"><img src=x onerror=window.__y=1>' }));
ok($seed && $hostile, 'both events accepted');

# settled: 1 + 2 attempts of each event, two dead letters, everything
# indexed
sub last_entry {
    my $r = $redis->cmd('XREVRANGE', "eb:{$BUS}:events", '+', '-', 'COUNT', 1);
    return ref $r eq 'ARRAY' && @$r ? $r->[0][0] : '';
}
ok(wait_for(sub { $redis->xlen("eb:{$BUS}:dlq:crm") == 2
                  && $redis->xlen("eb:{$BUS}:trace") == 6
                  && ($redis->cmd('GET', "eb:{$BUS}:idx:cursor") // '') eq last_entry() }, 20),
   'deliveries done: two dead letters at crm, 6 attempts, all indexed');

# ebd's counters, summed over the minute buckets (the hour's range)
my (%stats, %per_target);
for my $k (@{ $redis->cmd('KEYS', "eb:{$BUS}:stats:m:*") }) {
    my %h = @{ $redis->cmd('HGETALL', $k) };
    for my $f (keys %h) {
        if ($f =~ /^(delivered|retried|failed):(.+)$/) {
            $stats{$1} += $h{$f};
            $per_target{$2}{$1} += $h{$f};
        } else {
            $stats{$f} += $h{$f};
        }
    }
}
is_deeply([ map { $stats{$_} // 0 } qw(accepted matched delivered retried failed) ],
          [ 2, 2, 2, 2, 2 ],
          'the counters: 2 accepted, matched, delivered, retried and failed');

# the dead letters' entries by event id
my %letter = map { EBTest::json_decode($_->[1]{event})->{id} => $_->[0] }
             @{ $redis->xrange("eb:{$BUS}:dlq:crm") };
my @seed_trace = grep { $_->[1]{event} eq $seed } @{ $redis->xrange("eb:{$BUS}:trace") };

# --- the browser ------------------------------------------------------------------

my $shots = "$dir/shots";
if ($ENV{TEST_EB_SCREENSHOTS}) {
    mkdir $ENV{TEST_EB_SCREENSHOTS};
    $shots = abs_path($ENV{TEST_EB_SCREENSHOTS});
}
mkdir $shots;
write_file("$dir/plan.json", $JSON->encode({
    url => 'http://127.0.0.1:' . $ngx->port . '/console/', bus => $BUS,
    seed_id => $seed, hostile_id => $hostile, target => 'crm', shots => $shots,
    replay_target => 'onboarding',
    from => $t0 - 1000, to => int(time * 1000) + 1000 }));
my $raw = `timeout 120 /usr/bin/python3 t/bin/console-browser < $dir/plan.json 2>$dir/browser.err`;
is($? >> 8, 0, 'the browser walked every page') or diag slurp("$dir/browser.err");
my $seen = eval { $JSON->decode($raw) } || {};

# overview
my $ov = $seen->{overview} || {};
for my $k (qw(accepted matched delivered retried failed)) {
    is($ov->{totals}{$k}{hour}, $stats{$k}, "overview, last hour: $k = the counters' $stats{$k}");
    is($ov->{totals}{$k}{day}, $stats{$k}, "overview, last day: $k");
}
for my $t (qw(onboarding crm)) {
    for my $c (qw(delivered retried failed)) {
        is($ov->{targets}{$t}{$c}, $per_target{$t}{$c} // 0, "overview: $t $c");
    }
}
is($ov->{targets}{crm}{dead_letters}, 2, 'overview: crm has 2 dead letters');
is($ov->{targets}{onboarding}{lag}, 0, 'overview: onboarding has no backlog');
# the backlog as ebd's consumer group has it
for my $t (qw(onboarding crm audit)) {
    my %g = map { @$_ } @{ $redis->cmd('XINFO', 'GROUPS', "eb:{$BUS}:target:$t") // [] };
    is($ov->{targets}{$t}{lag}, $g{lag} // '—', "overview: $t lag as XINFO GROUPS says");
    is($ov->{targets}{$t}{pending}, $g{pending} // '—', "overview: $t pending");
}
is($ov->{canvases}, 5, 'overview: five charts (events: hour, day; backlog and dead letters: hour, day, now)');
is($ov->{charts}, 5, 'overview: Chart.js drew them');

# the seed's trace, found by id
my $tr = $seen->{trace} || {};
is($tr->{id}, $seed, 'search by id opens the seed event');
like($tr->{event} // '', qr/小明/, 'its CloudEvent: the employee\'s name');
like($tr->{event} // '', qr/"user_add_org"/, 'its CloudEvent: syncAction');
is_deeply($tr->{rules}, [ 'new-employee' ], 'its rules matched');
my $page = [ sort map { "$_->{target} $_->{attempt} $_->{status} $_->{outcome}" }
             @{ $tr->{attempts} || [] } ];
my $in_redis = [ sort map { "$_->[1]{target} $_->[1]{attempt} $_->[1]{status} $_->[1]{outcome}" }
                 @seed_trace ];
is(scalar @$page, 3, 'its page shows 3 attempts');
is_deeply($page, $in_redis, 'each attempt as eb:{B}:trace has it (target, attempt, status, outcome)')
    or diag explain $page, $in_redis;
is_deeply($in_redis, [ 'crm 1 500 retry', 'crm 2 500 dead-lettered', 'onboarding 1 200 delivered' ],
          'the trace itself: a retry and a dead letter at crm, onboarding delivered');

# searches
is_deeply([ sort @{ $seen->{search}{dead} || [] } ], [ sort $seed, $hostile ],
          'search by target and outcome: both dead-lettered events');
is_deeply($seen->{search}{notes}, [ $hostile ], 'search by source: the other event');
is_deeply($seen->{search}{both}, [ $hostile, $hostile ],
          'search by source and target: the other event\'s two attempts at crm');
is_deeply([ sort @{ $seen->{search}{window} || [] } ], [ sort $seed, $hostile ],
          'search by time range: both events');
is_deeply($seen->{search}{before}, [], 'search by time range: none before them');

# the hostile event
my $ho = $seen->{hostile} || {};
like($ho->{text} // '', qr{"<script>window\.__x=1</script>"}, 'hostile event: <script> shown as text');
like($ho->{text} // '', qr{"\\"><img src=x onerror=window\.__y=1>"}, 'hostile event: the img markup shown as text');
is($ho->{x}, 'undefined', 'hostile event: its script did not run');
is($ho->{y}, 'undefined', 'hostile event: its onerror did not run');
is($ho->{imgs}, 0, 'hostile event: no img element made');
is($ho->{scripts}, 0, 'hostile event: no script element made');

# configuration
my $html = $seen->{config_html} // '';
is_deeply([ sort @{ $seen->{config_rules} || [] } ], [ 'never', 'new-employee', 'notes' ],
          'config page: the rules');
like($html, qr/user_add_org/, 'config page: the pattern');
like($html, qr{/webhook/putEvents}, 'config page: the source\'s location');
like($html, qr/\*\*\*/, 'config page: masked values');
unlike($html, qr/\Q$_\E/, "config page: secret $_ not shown") for @SECRETS;

# dead letters
my $dl = $seen->{dlq} || {};
is_deeply([ sort @{ $dl->{entries} || [] } ], [ sort values %letter ], 'dead letters: both listed')
    or diag explain $dl;
is_deeply([ sort @{ $dl->{events} || [] } ], [ sort $seed, $hostile ], 'dead letters: their events');
like($dl->{inspect} // '', qr/小明/, 'dead letters: inspected, the seed\'s letter shows its event');
is($dl->{result}{ok}, 'true', 'dead letters: the seed\'s redriven from the page');
is($dl->{result}{id}, $letter{$seed}, 'dead letters: the result names its letter');
is_deeply($dl->{left}, [ $letter{$hostile} ], 'dead letters: the other one is left in the list');
like($dl->{count} // '', qr/^1 dead letter$/, 'dead letters: the count says 1');
is_deeply([ map { $_->[0] } @{ $redis->xrange("eb:{$BUS}:dlq:crm") } ], [ $letter{$hostile} ],
          'Redis: the dead-letter stream holds the other one only');
ok(wait_for(sub { ($peer->delivered_ids(path => '/crm')->{$seed} // 0) == 1 }, 10),
   'the peer received the redriven event');
my @re = grep { $_->{target} eq 'crm' && $_->{outcome} eq 'delivered' }
         @{ $seen->{redelivered}{attempts} || [] };
is(scalar @re, 1, 'the event page shows the redelivery')
    or diag explain $seen->{redelivered};
is($re[0]{status}, 200, 'with status 200') if @re;

# replay this window, from the events page: ebd runs it, the onboarding
# peer gets the window's events again, marked with the replay's name
my $rp = $seen->{replay} || {};
is($rp->{name}, 'from-the-page', 'replay: requested from the page') or diag explain $rp;
like($rp->{text} // '', qr/requested: ebd runs it/, 'replay: the page says ebd runs it');
is($rp->{state}, 'done', 'replay: the replays page shows it done');
is($rp->{events}, 2, 'replay: the window\'s 2 events');
ok(wait_for(sub { 2 == grep { ($_->{headers}{'ce-replay'} // '') eq 'from-the-page' }
                       @{ $peer->requests(path => '/onboarding') } }, 10),
   'replay: the onboarding peer received both again, with ce-replay');
is(scalar(grep { ($_->{headers}{'ce-replay'} // '') ne '' } @{ $peer->requests(path => '/crm') }), 0,
   'replay: nothing to crm, not selected');

# the CSP held: nothing refused, no script error
my @bad = grep { $_->{level} eq 'SEVERE' } @{ $seen->{log} || [] };
is(scalar @bad, 0, 'no error in the browser console (CSP violations, exceptions)')
    or diag explain \@bad;

for my $png (qw(overview.png trace.png config.png dlq.png)) {
    my $size = -s "$shots/$png" // 0;
    ok($size > 10_000 && slurp("$shots/$png") =~ /^\x89PNG/, "screenshot $png ($size bytes)");
}

$ngx->finish;
$ebd->finish;
done_testing;
