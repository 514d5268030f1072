#!/usr/bin/perl
# Rules in nginx (`eventbridge_config PATH;`): every accepted event is
# matched against its bus's rules and stored, in ONE MULTI/EXEC, in
# eb:{BUS}:events (field `rules`: the matched rule names) plus one entry
# per matched (rule, target) in eb:{BUS}:target:TARGET (fields `event`,
# byte for byte the stored event, and `rule`). Covered: the seed's
# walkthrough rule, unmatched events, several rules / several targets /
# shared targets, disabled rules, buses kept apart, the pattern operators
# end to end, PutEvents batches (MONITOR: the exact command sequence),
# atomicity when Redis dies mid-request, `nginx -t` on bad files, reloads
# (changed file, invalid file, under load).
use strict;
use warnings;
use utf8;
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::IP;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use EBTest qw(wait_for write_file slurp);

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

# Reloads dlopen() the module again: work on a private copy, so that a
# concurrent rebuild of build/ cannot pull it away under a reload.
{
    my $mod = EBTest::Nginx::module();
    if ($mod && -f $mod) {
        my $d = tempdir('eb-mod-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        copy($mod, "$d/ngx_http_eventbridge_module.so") or die "copy: $!";
        chmod 0755, "$d/ngx_http_eventbridge_module.so";
        $ENV{TEST_EB_MODULE} = "$d/ngx_http_eventbridge_module.so";
    }
}

# A frozen (SIGSTOP) Redis must always be continued (or killed), or the
# harness's cleanup (TERM + waitpid) would hang on it; forked load clients
# are reaped.
my (@frozen, @children);
sub reap_children {
    for my $pid (@children) {
        kill 'KILL', $pid if kill 0, $pid;
        waitpid $pid, 0;
    }
    @children = ();
}
END { my $rc = $?; kill 'CONT', $_ for @frozen; reap_children(); $? = $rc; }
$SIG{INT} = $SIG{TERM} = sub {
    kill 'CONT', $_ for @frozen; reap_children(); EBTest::cleanup_all(); exit 1
};

my $JSON = JSON::PP->new->utf8->canonical->pretty;

sub write_config {
    my ($ngx, $cfg) = @_;
    write_file($ngx->dir . '/buses.json', ref $cfg ? $JSON->encode($cfg) : $cfg);
}

sub F() { JSON::PP::false }
sub T() { JSON::PP::true }

# a rule: pattern, then target names (or { target => ..., transform => ... })
sub rule {
    my ($pattern, @targets) = @_;
    return { pattern => $pattern,
             targets => [ map { ref $_ ? $_ : { target => $_ } } @targets ] };
}

sub http_target { { type => 'http', url => "https://$_[0].example.com/hook" } }

# rule name -> [ target names ] of one bus of a configuration
sub rule_targets {
    my ($cfg, $bus) = @_;
    my $rules = $cfg->{buses}{$bus}{rules} // {};
    return { map { my $r = $_;
                   ($r => [ map { $_->{target} } @{ $rules->{$r}{targets} } ]) }
             keys %$rules };
}

# --- Redis views --------------------------------------------------------------

# [ { id, fields, raw, ev } ] of eb:{BUS}:events
sub events {
    my ($redis, $bus) = @_;
    return [ map { { id => $_->[0], fields => $_->[1], raw => $_->[1]{event},
                     ev => EBTest::json_decode($_->[1]{event} // '') // {} } }
             @{ $redis->xrange("eb:{$bus}:events") } ];
}

# [ { id, fields, raw, ev } ] of eb:{BUS}:target:TARGET
sub tentries {
    my ($redis, $bus, $target) = @_;
    return [ map { { id => $_->[0], fields => $_->[1], raw => $_->[1]{event},
                     ev => EBTest::json_decode($_->[1]{event} // '') // {} } }
             @{ $redis->xrange("eb:{$bus}:target:$target") } ];
}

sub tlen {
    my ($redis, $bus, $target) = @_;
    my $n = $redis->xlen("eb:{$bus}:target:$target");
    return ref $n ? -1 : $n;
}

sub elen {
    my ($redis, $bus) = @_;
    my $n = $redis->xlen("eb:{$bus}:events");
    return ref $n ? -1 : $n;
}

sub names { join ',', sort grep { length } split /,/, $_[0] // '' }

# The whole bus is consistent: the target streams hold exactly one entry
# per (event in eb:{BUS}:events, rule in its `rules`, target of that
# rule), with the event byte for byte, and nothing else; every entry has
# exactly the fields event/rules (events) and event/rule (targets).
sub bus_consistent {
    my ($redis, $bus, $map, $what) = @_;
    my (%want, %got, @bad);
    my %targets = map { map { $_ => 1 } @$_ } values %$map;
    for my $e (@{ events($redis, $bus) }) {
        my @f = sort keys %{ $e->{fields} };
        push @bad, "events entry $e->{id} has fields @f"
            unless "@f" eq 'event rules';
        for my $r (split /,/, $e->{fields}{rules} // '') {
            push @bad, "events entry $e->{id} names unknown rule $r"
                unless $map->{$r};
            $want{"$_\n$r\n$e->{raw}"}++ for @{ $map->{$r} // [] };
        }
    }
    for my $t (sort keys %targets) {
        for my $e (@{ tentries($redis, $bus, $t) }) {
            my @f = sort keys %{ $e->{fields} };
            push @bad, "target $t entry $e->{id} has fields @f"
                unless "@f" eq 'event rule';
            $got{"$t\n$e->{fields}{rule}\n$e->{raw}"}++;
        }
    }
    for my $k (sort keys %{ { %want, %got } }) {
        my ($t, $r, $raw) = split /\n/, $k, 3;
        my $id = (EBTest::json_decode($raw) // {})->{id} // '?';
        my ($w, $g) = ($want{$k} // 0, $got{$k} // 0);
        push @bad, "target $t, rule $r, event $id: $g entries, want $w"
            if $w != $g;
    }
    ok(!@bad, "$what: target streams hold exactly the fan-out of the stored events")
        or diag join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)];
}

# --- HTTP ---------------------------------------------------------------------

sub post {
    my ($ngx, $path, $body, @hdr) = @_;
    my %h = @hdr;
    unshift @hdr, 'Content-Type' => 'application/json'
        unless grep { lc eq 'content-type' } keys %h;
    return $ngx->request(method => 'POST', path => $path, headers => \@hdr,
                         body => $body);
}

# A request sent now whose answer is read later.
sub send_request {
    my ($port, $path, $body) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'tcp', Timeout => 5)
        or die "connect: $@";
    local $SIG{PIPE} = 'IGNORE';
    print {$s} "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}

# (status, raw response) of the answer on $s
sub read_response {
    my ($s, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $end = time + $timeout;
    my $resp = '';
    while ((my $left = $end - time) > 0) {
        next unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        last if !$n;
        $resp .= $buf;
    }
    close $s;
    my $status = $resp =~ m{^HTTP/1\.[01] (\d+)} ? $1 : 0;
    return ($status, $resp);
}

# Redis MONITOR on its own connection: the commands Redis ran while $code
# ran, as [ [client, COMMAND, args...], ... ] (args unescaped; up to EXEC,
# or 3 s).
my %esc = (n => "\n", r => "\r", t => "\t", a => "\a", b => "\b");
sub unrepr {
    my ($s) = @_;
    $s =~ s/\\(?:x([0-9a-fA-F]{2})|(.))/defined $1 ? chr(hex $1) : ($esc{$2} \/\/ $2)/gse;
    return $s;
}
sub monitored {
    my ($redis, $code) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                PeerPort => $redis->port, Proto => 'tcp',
                                Timeout => 5) or die "monitor: $@";
    print {$s} "MONITOR\r\n";
    my $ok = <$s>;
    die "MONITOR: $ok" unless defined $ok && $ok =~ /^\+OK/;
    $code->();
    my $sel = IO::Select->new($s);
    my ($buf, @cmds) = ('');
    my $end = time + 3;
    while (time < $end) {
        last if grep { $_->[1] eq 'EXEC' } @cmds;
        next unless $sel->can_read($end - time);
        my $n = sysread($s, my $chunk, 65536);
        last unless $n;
        $buf .= $chunk;
        while ($buf =~ s/^\+([^\r\n]*)\r\n//) {
            my $line = $1;
            next unless $line =~ /^[\d.]+ \[\d+ ([^\]]+)\] (.*)$/;
            my ($client, $rest) = ($1, $2);
            my @args = map { unrepr($_) } $rest =~ /"((?:[^"\\]|\\.)*)"/g;
            push @cmds, [ $client, uc($args[0] // ''), @args[1 .. $#args] ];
        }
    }
    close $s;
    return \@cmds;
}

# =============================================================================
# The main configuration: one file, several buses
# =============================================================================

# The seed's walkthrough, as docs/configuration.md has it.
my %seed_targets = (
    'users-db' => {
        type => 'mysql', host => '127.0.0.1', port => 3306, user => 'eb',
        password => 'pw', database => 'hr', table => 'user_info',
        columns => { dingId => '$.data.body.dingId', active => '$.data.body.active',
                     isAdmin => '$.data.body.isAdmin', userId => '$.data.body.userId',
                     name => '$.data.body.name' },
    },
    crm => { type => 'http', url => 'https://crm.example.com/api/users',
             connection => 'crm-key' },
);
my %seed_rule = (
    'new-employee' => {
        pattern => { source => ['my.dingtalk'],
                     data => { body => { syncAction => ['user_add_org'] } } },
        targets => [
            { target => 'users-db' },
            { target => 'crm',
              transform => { form => 'TEMPLATE',
                             value => { name => '$.data.body.name',
                                        id => '$.data.body.userId' },
                             template => '{"user":"${name}","id":"${id}"}' } },
        ],
    },
);

# operator rules on bus "ops": each carries a discriminator data.body.op so
# that a case can only ever match the rules it is about
sub op_rule {
    my ($op, %body) = @_;
    return rule({ data => { body => { op => [$op], %body } } }, 'ops-sink');
}
my %ops_rules = (
    'prefix'       => op_rule('prefix', action => [{ prefix => 'user_' }]),
    'suffix'       => op_rule('suffix', file => [{ suffix => '.png' }]),
    'contains'     => op_rule('contains', title => [{ contains => 'add' }]),
    'numeric'      => op_rule('numeric', amount => [{ numeric => ['>', 100, '<=', 200] }]),
    'numeric-eq'   => op_rule('numeq', n => [300]),
    # past 2^53: an integer a double cannot hold (2^53 + 1) compares exactly
    'bigint'       => op_rule('bigint', id => [{ numeric => ['>', 9007199254740992] }]),
    'anything-but' => op_rule('anything-but',
                              status => [{ 'anything-but' => ['deleted', 'archived'] }]),
    'anything-but-prefix' => op_rule('abp', status => [{ 'anything-but' => { prefix => 'tmp_' } }]),
    'exists-false' => op_rule('exists', deletedAt => [{ exists => F }]),
    'exists-true'  => op_rule('exists', deletedAt => [{ exists => T }]),
    'cidr-lo'      => rule({ aliyunpublishaddr => [{ cidr => '127.0.0.0/8' }],
                             data => { body => { op => ['cidr'] } } }, 'ops-sink'),
    'cidr-host'    => rule({ aliyunpublishaddr => [{ cidr => '127.0.0.1/32' }],
                             data => { body => { op => ['cidr'] } } }, 'ops-sink'),
    'cidr-ten'     => rule({ aliyunpublishaddr => [{ cidr => '10.0.0.0/8' }],
                             data => { body => { op => ['cidr'] } } }, 'ops-sink'),
    'eic'          => op_rule('eic', dept => [{ 'equals-ignore-case' => 'DingTalk' }]),
    'wildcard'     => op_rule('wildcard', action => [{ wildcard => 'user_*_org' }]),
    'regex'        => op_rule('regex', userId => [{ regex => '^[0-9]{4}-[a-z]+$' }]),
    'regex-utf8'   => op_rule('regex', name => [{ regex => '^小.$' }]),
    'or'           => op_rule('or', '$or' => [ { a => [1] }, { b => [{ prefix => 'x' }] } ]),
    'or-top'       => rule({ data => { body => { op => ['or-top'] } },
                             '$or' => [ { data => { queryString => { dept => ['r&d'] } } },
                                        { data => { headers => { 'x-team' => ['hr'] } } } ] },
                           'ops-sink'),
    'array'        => op_rule('array', department => [2]),
    'envelope'     => rule({ source => ['ops.src'], type => ['eventbridge:Events:HTTPEvent'],
                             aliyuneventbusname => ['ops'],
                             data => { httpMethod => ['POST'], path => ['/ops'],
                                       body => { op => ['envelope'] } } }, 'ops-sink'),
);

# many rules with the longest names, each with two targets of the longest
# names, all matching one event
my $LONG_BUS = 'b' x 128;
my @many_targets = map { sprintf('t%03d', $_) . ('T' x 124) } 1 .. 2;
my %many_rules = map { ((sprintf('r%03d', $_) . ('R' x 124))
                        => rule({ source => ['many.src'] }, @many_targets)) } 1 .. 40;

my $cfg = {
    connections => {
        'crm-key' => { type => 'api_key', header => 'X-Api-Key', value => 's3cret' },
    },
    targets => {
        %seed_targets,
        map({ $_ => http_target($_) }
            qw(t-a t-b shared t-off ops-sink pe-a pe-b)),
        (map { ($_ => http_target('many')) } @many_targets),
        't-c'  => { type => 'redis', address => '127.0.0.1:1', stream => 'eb:{chained}:events' },
        'pe-c' => { type => 'cloudevents', url => 'https://fn.example.com/', mode => 'structured' },
    },
    buses => {
        hr => { rules => \%seed_rule },
        multi => { rules => {
            r1 => rule({ data => { body => { kind => ['order'] } } }, 't-a', 't-b', 't-c'),
            r2 => rule({ data => { body => { amount => [{ numeric => ['>', 10] }] } } }, 'shared'),
            r3 => rule({ data => { body => { kind => [{ prefix => 'ord' }] } } }, 'shared'),
            'r-off' => { %{ rule({ data => { body => { kind => ['order'] } } }, 't-off', 'shared') },
                         enabled => F, description => 'switched off' },
        } },
        other => { description => 'must never see multi events', rules => {
            r1 => rule({ data => { body => { kind => ['order'] } } }, 't-a'),
            'catch-multi' => rule({ source => ['multi.src'] }, 't-a', 'shared'),
        } },
        ops => { rules => \%ops_rules },
        plain => {},
        $LONG_BUS => { rules => \%many_rules },
        empty => { rules => {} },
        pe => { rules => {
            'pe-created' => rule({ type => ['com.example.created'] }, 'pe-a', 'pe-b'),
            'pe-big'     => rule({ data => { n => [{ numeric => ['>=', 10] }] } }, 'pe-a'),
            'pe-shop'    => rule({ source => [{ prefix => '/shop' }] }, 'pe-c'),
        } },
    },
};

my $redis = EBTest::Redis->start;
my $ngx = EBTest::Nginx->new(redis => $redis, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hr       { eventbridge_source my.dingtalk bus=hr; }
        location /hr-other { eventbridge_source other.dingtalk bus=hr; }
        location /multi    { eventbridge_source multi.src bus=multi; }
        location /other    { eventbridge_source other.src bus=other; }
        location /ops      { eventbridge_source ops.src bus=ops; }
        location /plain    { eventbridge_source plain.src bus=plain; }
        location /empty    { eventbridge_source empty.src bus=empty; }
        location /pe       { eventbridge_put_events bus=pe; }
        location /many     { eventbridge_source many.src bus=%%LONGBUS%%; }
    }
EOF
$ngx->write_conf($ngx->{http} =~ s/%%LONGBUS%%/$LONG_BUS/r);
write_config($ngx, $cfg);
{
    my ($rc, $out) = $ngx->test_conf;
    is($rc, 0, 'nginx -t: the main configuration file passes') or diag $out;
}
$ngx->start;

# --- 1. the seed's walkthrough ------------------------------------------------

my $dingtalk = slurp('t/data/dingtalk_user_add_org.json');
{
    my $r = post($ngx, '/hr', $dingtalk);
    is($r->{status}, 200, 'walkthrough: user_add_org accepted') or diag $r->{raw};
    my $id = $r->{json}{eventId} // '';

    my $ev = events($redis, 'hr');
    is(scalar @$ev, 1, 'walkthrough: one entry in eb:{hr}:events');
    my $e = $ev->[0] // {};
    is($e->{ev}{id}, $id, 'walkthrough: it is the answered event');
    is($e->{fields}{rules}, 'new-employee', 'walkthrough: rules="new-employee"');
    is_deeply([ sort keys %{ $e->{fields} // {} } ], [ 'event', 'rules' ],
              'walkthrough: events entry has the fields event and rules');

    for my $t ('users-db', 'crm') {
        my $te = tentries($redis, 'hr', $t);
        is(scalar @$te, 1, "walkthrough: eb:{hr}:target:$t has exactly one entry");
        my $x = $te->[0] // { fields => {} };
        ok(defined $x->{raw} && defined $e->{raw} && $x->{raw} eq $e->{raw},
           "walkthrough: $t entry's event is the stored event byte for byte")
            or diag "target: " . ($x->{raw} // 'undef') . "\nevents: " . ($e->{raw} // 'undef');
        is($x->{fields}{rule}, 'new-employee', "walkthrough: $t entry's rule is new-employee");
        is_deeply([ sort keys %{ $x->{fields} } ], [ 'event', 'rule' ],
                  "walkthrough: $t entry has the fields event and rule");
    }
    is_deeply($e->{ev}{data}{body}, EBTest::json_decode($dingtalk),
              'walkthrough: the event carries the DingTalk body (transforms are for ebd)');
}

# --- 2. unmatched events: stored, empty rules, no fan-out ---------------------

{
    (my $leave = $dingtalk) =~ s/user_add_org/user_leave_org/;
    my $r = post($ngx, '/hr', $leave);
    is($r->{status}, 200, 'unmatched (syncAction user_leave_org): 200');
    $r = post($ngx, '/hr-other', $dingtalk);
    is($r->{status}, 200, 'unmatched (source other.dingtalk): 200');
    $r = post($ngx, '/hr', 'not json at all', 'Content-Type' => 'text/plain');
    is($r->{status}, 200, 'unmatched (text body): 200');

    my $ev = events($redis, 'hr');
    is(scalar @$ev, 4, 'unmatched: stored in eb:{hr}:events');
    for my $i (1 .. 3) {
        my $f = $ev->[$i]{fields} // {};
        ok(exists $f->{rules} && $f->{rules} eq '',
           "unmatched event $i: field rules present and empty");
    }
    is(tlen($redis, 'hr', 'users-db'), 1, 'unmatched: no new users-db entry');
    is(tlen($redis, 'hr', 'crm'), 1, 'unmatched: no new crm entry');
    bus_consistent($redis, 'hr', rule_targets($cfg, 'hr'), 'bus hr');

    for my $bus (qw(plain empty)) {
        $r = post($ngx, "/$bus", '{"x":1}');
        is($r->{status}, 200, "bus without rules ($bus): 200");
        my $e = events($redis, $bus);
        is(scalar @$e, 1, "bus without rules ($bus): stored");
        is($e->[0]{fields}{rules}, '', "bus without rules ($bus): rules empty");
    }
}

# --- 3. several rules, several targets, shared targets, disabled, buses ------

{
    my $r = post($ngx, '/multi', '{"kind":"order","amount":50}');
    is($r->{status}, 200, 'multi: order accepted');
    my $id = $r->{json}{eventId} // '';
    my $e = events($redis, 'multi')->[-1] // {};
    is($e->{ev}{id}, $id, 'multi: the stored event');
    is(names($e->{fields}{rules}), 'r1,r2,r3',
       'multi: rules r1,r2,r3 matched (disabled r-off not)') or diag $e->{fields}{rules};
    my @named = split /,/, $e->{fields}{rules} // '';
    is(scalar @named, 3, 'multi: each rule named once');
    for my $t (qw(t-a t-b t-c)) {
        my $te = tentries($redis, 'multi', $t);
        is(scalar @$te, 1, "multi: rule r1 with 3 targets: one entry in $t");
        is($te->[0]{fields}{rule}, 'r1', "multi: $t entry from rule r1");
        is($te->[0]{raw}, $e->{raw}, "multi: $t entry's event is the stored event");
    }
    my $sh = tentries($redis, 'multi', 'shared');
    is(scalar @$sh, 2, 'multi: target shared by r2 and r3 (and disabled r-off): two entries');
    is_deeply([ sort map { $_->{fields}{rule} } @$sh ], [ 'r2', 'r3' ],
              'multi: one shared entry per rule');
    ok(!(grep { $_->{raw} ne $e->{raw} } @$sh), 'multi: both shared entries hold the event');
    is(tlen($redis, 'multi', 't-off'), 0, 'multi: disabled rule r-off never fans out');

    $r = post($ngx, '/multi', '{"kind":"ordinary","amount":5}');
    is($r->{status}, 200, 'multi: "ordinary" accepted');
    $e = events($redis, 'multi')->[-1] // {};
    is($e->{fields}{rules}, 'r3', 'multi: only r3 (prefix "ord") matched');
    is(tlen($redis, 'multi', 'shared'), 3, 'multi: shared got one more entry (r3)');
    is(tlen($redis, 'multi', 't-a'), 1, 'multi: t-a unchanged');

    $r = post($ngx, '/multi', '{"kind":"refund","amount":11}');
    $e = events($redis, 'multi')->[-1] // {};
    is($e->{fields}{rules}, 'r2', 'multi: only r2 (amount > 10) matched');

    $r = post($ngx, '/multi', '{"kind":"refund","amount":10}');
    $e = events($redis, 'multi')->[-1] // {};
    is($e->{fields}{rules}, '', 'multi: nothing matched');
    is(tlen($redis, 'multi', 't-off'), 0, 'multi: t-off still empty');
    bus_consistent($redis, 'multi', rule_targets($cfg, 'multi'), 'bus multi');

    # buses are kept apart: bus "other" has a rule r1 of the same pattern
    # and a rule on source multi.src; neither sees bus multi's events
    is(elen($redis, 'other'), 0, 'buses apart: nothing in eb:{other}:events');
    is(tlen($redis, 'other', 't-a'), 0, 'buses apart: nothing in eb:{other}:target:t-a');
    is(tlen($redis, 'other', 'shared'), 0, 'buses apart: nothing in eb:{other}:target:shared');

    my $multi_ta = tlen($redis, 'multi', 't-a');
    my $multi_sh = tlen($redis, 'multi', 'shared');
    $r = post($ngx, '/other', '{"kind":"order","amount":50}');
    is($r->{status}, 200, 'buses apart: order on bus other accepted');
    $e = events($redis, 'other')->[-1] // {};
    is($e->{fields}{rules}, 'r1', "buses apart: other's r1 only (not multi's r2, r3)");
    my $te = tentries($redis, 'other', 't-a');
    is(scalar @$te, 1, 'buses apart: one entry in eb:{other}:target:t-a');
    is($te->[0]{fields}{rule}, 'r1', 'buses apart: from other\'s r1');
    is(tlen($redis, 'multi', 't-a'), $multi_ta, 'buses apart: eb:{multi}:target:t-a unchanged');
    is(tlen($redis, 'multi', 'shared'), $multi_sh, 'buses apart: eb:{multi}:target:shared unchanged');
    bus_consistent($redis, 'other', rule_targets($cfg, 'other'), 'bus other');
}

# --- 3b. many rules, long names, a large event -------------------------------

{
    my $body = '{"blob":"' . ('x' x 100_000) . '"}';
    my $r = post($ngx, '/many', $body);
    is($r->{status}, 200, 'many rules: a 100 KB event matching 40 rules × 2 targets accepted')
        or diag $r->{raw};
    my $ev = events($redis, $LONG_BUS);
    is(scalar @$ev, 1, 'many rules: stored');
    is(names($ev->[0]{fields}{rules}), join(',', sort keys %many_rules),
       'many rules: all 40 (128-character) rule names in rules');
    for my $t (@many_targets) {
        my $te = tentries($redis, $LONG_BUS, $t);
        is(scalar @$te, 40, 'many rules: 40 entries in the target ' . substr($t, 0, 4) . '…');
        is_deeply([ sort map { $_->{fields}{rule} } @$te ], [ sort keys %many_rules ],
                  'many rules: one per rule');
    }
    bus_consistent($redis, $LONG_BUS, rule_targets($cfg, $LONG_BUS), 'many rules');
}

# --- 4. operators end to end (webhook events on bus "ops") --------------------

{
    # [ body, expected rules (sorted), extra request options ]
    my @cases = (
        [ '{"op":"prefix","action":"user_add_org"}', 'prefix' ],
        [ '{"op":"prefix","action":"admin_user_add"}', '' ],
        [ '{"op":"prefix","action":7}', '' ],
        [ '{"op":"suffix","file":"a.png"}', 'suffix' ],
        [ '{"op":"suffix","file":"a.png.txt"}', '' ],
        [ '{"op":"contains","title":"user_add_org"}', 'contains' ],
        [ '{"op":"contains","title":"user_del"}', '' ],
        [ '{"op":"numeric","amount":150}', 'numeric' ],
        [ '{"op":"numeric","amount":200}', 'numeric' ],
        [ '{"op":"numeric","amount":1.5e2}', 'numeric' ],
        [ '{"op":"numeric","amount":100}', '' ],
        [ '{"op":"numeric","amount":200.5}', '' ],
        [ '{"op":"numeric","amount":"150"}', '' ],
        [ '{"op":"numeq","n":3.0e2}', 'numeric-eq' ],
        [ '{"op":"numeq","n":300.0}', 'numeric-eq' ],
        [ '{"op":"numeq","n":301}', '' ],
        [ '{"op":"numeq","n":"300"}', '' ],
        [ '{"op":"bigint","id":9007199254740993}', 'bigint' ],
        [ '{"op":"bigint","id":9007199254740992}', '' ],
        [ '{"op":"anything-but","status":"active"}', 'anything-but' ],
        [ '{"op":"anything-but","status":"deleted"}', '' ],
        [ '{"op":"anything-but","status":"archived"}', '' ],
        [ '{"op":"anything-but"}', '' ],
        [ '{"op":"abp","status":"real"}', 'anything-but-prefix' ],
        [ '{"op":"abp","status":"tmp_x"}', '' ],
        [ '{"op":"exists"}', 'exists-false' ],
        [ '{"op":"exists","deletedAt":null}', 'exists-true' ],
        [ '{"op":"exists","deletedAt":"2024-01-01"}', 'exists-true' ],
        [ '{"op":"cidr"}', 'cidr-host,cidr-lo' ],
        [ '{"op":"eic","dept":"dingtalk"}', 'eic' ],
        [ '{"op":"eic","dept":"DINGTALK"}', 'eic' ],
        [ '{"op":"eic","dept":"dingtalks"}', '' ],
        [ '{"op":"wildcard","action":"user_add_org"}', 'wildcard' ],
        [ '{"op":"wildcard","action":"user__org"}', 'wildcard' ],
        [ '{"op":"wildcard","action":"user_add_orgs"}', '' ],
        [ '{"op":"wildcard","action":"xuser_add_org"}', '' ],
        [ '{"op":"regex","userId":"1234-ab","name":"小明"}', 'regex,regex-utf8' ],
        [ '{"op":"regex","userId":"12345-ab","name":"小明明"}', '' ],
        [ '{"op":"regex","userId":"1234-AB"}', '' ],
        [ '{"op":"or","a":1}', 'or' ],
        [ '{"op":"or","b":"xy"}', 'or' ],
        [ '{"op":"or","a":2,"b":"y"}', '' ],
        [ '{"op":"or-top"}', 'or-top', path => '/ops?dept=r%26d' ],
        [ '{"op":"or-top"}', 'or-top', headers => [ 'X-Team' => 'hr' ] ],
        [ '{"op":"or-top"}', '', path => '/ops?dept=rd', headers => [ 'X-Team' => 'ops' ] ],
        [ '{"op":"array","department":[1,2,3]}', 'array' ],
        [ '{"op":"array","department":[1,3]}', '' ],
        [ '{"op":"envelope"}', 'envelope' ],
        [ '{"op":"envelope"}', '', path => '/ops/sub' ],
    );
    my $matches = 0;
    for my $c (@cases) {
        my ($body, $want, %o) = @$c;
        my $path = $o{path} // '/ops';
        my $r = post($ngx, $path, $body, @{ $o{headers} // [] });
        my $e = events($redis, 'ops')->[-1] // { fields => {}, ev => {} };
        my $what = "operators: $body" . ($o{path} ? " at $o{path}" : '')
            . ($o{headers} ? " with @{ $o{headers} }" : '');
        if ($r->{status} != 200 || ($e->{ev}{id} // '') ne ($r->{json}{eventId} // '-')) {
            fail("$what: accepted and stored") or diag $r->{raw};
            next;
        }
        is(names($e->{fields}{rules}), $want, "$what → rules \"$want\"");
        my @m = split /,/, $want;
        $matches += @m;
    }
    is(tlen($redis, 'ops', 'ops-sink'), $matches, "operators: $matches entries in ops-sink");
    bus_consistent($redis, 'ops', rule_targets($cfg, 'ops'), 'bus ops');
}

# --- 5. PutEvents batch through rules: one MULTI/EXEC -------------------------

{
    my @body = (
        '{"specversion":"1.0","id":"pe-1","source":"/shop/orders","type":"com.example.created","data":{"n":20}}',
        '{"specversion":"1.0","source":"/s","type":"t"}',
        '{"specversion":"1.0","id":"pe-3","source":"/x","type":"com.example.other","data":{"n":1}}',
        '{"specversion":"1.0","id":"pe-4","source":"/x","type":"com.example.created","data":{"n":5}}',
    );
    my $r;
    my $cmds = monitored($redis, sub {
        $r = post($ngx, '/pe', '[' . join(',', @body) . ']',
                  'Content-Type' => 'application/cloudevents-batch+json');
    });
    is($r->{status}, 200, 'put events batch: 200') or diag $r->{raw};
    my @res = map { $_->{eventId} // $_->{errorCode} // '?' } @{ $r->{json}{entries} // [] };
    is_deeply(\@res, [ 'pe-1', 'MissingAttribute', 'pe-3', 'pe-4' ],
              'put events batch: per-entry results') or diag $r->{body};

    my $ev = events($redis, 'pe');
    is_deeply([ map { $_->{ev}{id} } @$ev ], [ 'pe-1', 'pe-3', 'pe-4' ],
              'put events batch: the 3 valid entries stored in order');
    my %raw = map { $_->{ev}{id} => $_->{raw} } @$ev;
    is_deeply([ map { names($_->{fields}{rules}) } @$ev ],
              [ 'pe-big,pe-created,pe-shop', '', 'pe-created' ],
              'put events batch: each entry matched per its own content');

    # the exact command sequence Redis ran for the request
    my @x = grep { $_->[1] =~ /^(MULTI|XADD|EXEC)$/ } @$cmds;
    my %clients = map { $_->[0] => 1 } @x;
    is(scalar keys %clients, 1, 'put events batch: one client sent it all');
    my @got;
    for my $c (@x) {
        my ($cmd, @a) = @$c[1 .. $#$c];
        if ($cmd ne 'XADD') { push @got, $cmd; next }
        my ($id) = (EBTest::json_decode($a[-3] // '') // {})->{id} // '?';
        if (@a == 9 && $a[0] eq 'eb:{pe}:events') {
            push @got, join ' ', 'XADD', @a[0 .. 5], $id,
                $a[7], '<' . names($a[8]) . '>';
            push @got, "RAW-MISMATCH $id" unless ($raw{$id} // '') eq $a[6];
        } else {
            push @got, join ' ', 'XADD', @a[0 .. 2], $id, @a[4 .. $#a];
            push @got, "RAW-MISMATCH $id" unless ($raw{$id} // '') eq ($a[3] // '');
        }
    }
    # within one event, its target XADDs in any order
    my @norm;
    for my $g (@got) {
        if (@norm && ref $norm[-1] && $g =~ /:target:/) { push @{ $norm[-1] }, $g; next }
        push @norm, $g;
        push @norm, [] if $g =~ /:events /;
    }
    @norm = map { ref $_ ? sort @$_ : $_ } @norm;
    my $head = 'XADD eb:{pe}:events MAXLEN ~ 1000000 * event';
    is_deeply(\@norm, [
        'MULTI',
        "$head pe-1 rules <pe-big,pe-created,pe-shop>",
        'XADD eb:{pe}:target:pe-a * event pe-1 rule pe-big',
        'XADD eb:{pe}:target:pe-a * event pe-1 rule pe-created',
        'XADD eb:{pe}:target:pe-b * event pe-1 rule pe-created',
        'XADD eb:{pe}:target:pe-c * event pe-1 rule pe-shop',
        "$head pe-3 rules <>",
        "$head pe-4 rules <pe-created>",
        'XADD eb:{pe}:target:pe-a * event pe-4 rule pe-created',
        'XADD eb:{pe}:target:pe-b * event pe-4 rule pe-created',
        'EXEC',
    ], 'put events batch: MULTI, per valid entry its XADD then its fan-out, EXEC')
        or diag explain \@got;

    is_deeply([ sort map { "$_->{ev}{id}/$_->{fields}{rule}" } @{ tentries($redis, 'pe', 'pe-a') } ],
              [ 'pe-1/pe-big', 'pe-1/pe-created', 'pe-4/pe-created' ],
              'put events batch: pe-a holds pe-1 twice (two rules) and pe-4')
        or diag explain [ map { "$_->{ev}{id}/$_->{fields}{rule}" } @{ tentries($redis, 'pe', 'pe-a') } ];
    bus_consistent($redis, 'pe', rule_targets($cfg, 'pe'), 'bus pe');

    # a single structured event
    $r = post($ngx, '/pe', '{"specversion":"1.0","id":"pe-5","source":"/shop","type":"t","data":{"n":10}}',
              'Content-Type' => 'application/cloudevents+json');
    is($r->{status}, 200, 'put events structured: 200');
    my $e = events($redis, 'pe')->[-1] // {};
    is(names($e->{fields}{rules}), 'pe-big,pe-shop', 'put events structured: rules');
    bus_consistent($redis, 'pe', rule_targets($cfg, 'pe'), 'bus pe after structured');
}

$ngx->finish;

# =============================================================================
# Atomicity: Redis killed while it holds the request's MULTI/EXEC unread
# =============================================================================

{
    my $acfg = {
        targets => { map { $_ => http_target($_) } qw(x y z w) },
        buses => { atom => { rules => {
            a1 => rule({ source => ['atom.src'] }, 'x', 'y', 'z'),
            a2 => rule({ data => { body => { k => ['v'] } } }, 'y', 'w'),
        } } },
    };
    my $map = rule_targets($acfg, 'atom');
    my $r2 = EBTest::Redis->start(appendonly => 'yes');
    my $n2 = EBTest::Nginx->new(redis => $r2, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_redis_timeout 4s;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /atom { eventbridge_source atom.src bus=atom; }
    }
EOF
    write_config($n2, $acfg);
    $n2->start;

    my $r = post($n2, '/atom', '{"k":"v","n":0}');
    is($r->{status}, 200, 'atomicity: first event accepted');
    my $id0 = $r->{json}{eventId} // '';
    my %before = map { $_ => tlen($r2, 'atom', $_) } qw(x y z w);
    is_deeply(\%before, { x => 1, y => 2, z => 1, w => 1 }, 'atomicity: first event fanned out');

    my $pid = $r2->{pid};
    kill 'STOP', $pid or die "cannot stop redis $pid: $!";
    push @frozen, $pid;
    my $s = send_request($n2->port, '/atom', '{"k":"v","n":1}');
    sleep 0.5;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    @frozen = grep { $_ != $pid } @frozen;
    delete $r2->{pid};
    delete $r2->{sock};
    my ($status, $raw) = read_response($s, 8);
    is($status, 503, 'atomicity: the request Redis died on got 503') or diag $raw;
    like($raw, qr/\r\nRetry-After: \d+\r\n/i, 'atomicity: with Retry-After');

    $r2->_spawn;        # same port, same dir: the AOF is loaded again
    my $ev = events($r2, 'atom');
    is_deeply([ map { $_->{ev}{id} } @$ev ], [ $id0 ],
              'atomicity: after restart eb:{atom}:events holds only the acknowledged event');
    is_deeply({ map { $_ => tlen($r2, 'atom', $_) } qw(x y z w) }, \%before,
              'atomicity: no target stream has a partial write');
    bus_consistent($r2, 'atom', $map, 'atomicity after restart');

    my ($ok, $t0, $n) = (undef, time, 1);
    my @acked = ($id0);
    while (time - $t0 < 10) {
        $n++;
        $r = post($n2, '/atom', qq({"k":"v","n":$n}));
        if ($r->{status} == 200) { $ok = $r; push @acked, $r->{json}{eventId}; last }
        sleep 0.1;
    }
    ok($ok, 'atomicity: requests succeed again after the restart') or diag $r->{raw};
    $ev = events($r2, 'atom');
    is_deeply([ map { $_->{ev}{id} } @$ev ], \@acked,
              'atomicity: the stream holds exactly the acknowledged events');
    is(names($ev->[-1]{fields}{rules}), 'a1,a2', 'atomicity: the new event matched a1,a2');
    is_deeply({ map { $_ => tlen($r2, 'atom', $_) } qw(x y z w) },
              { x => 2, y => 4, z => 2, w => 2 }, 'atomicity: the new event fanned out fully');
    bus_consistent($r2, 'atom', $map, 'atomicity at the end');
    $n2->finish;
    $r2->stop;
}

# =============================================================================
# nginx -t on the bus configuration file
# =============================================================================

my $TCONF = <<'EOF';
    eventbridge_redis 127.0.0.1:6379;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /hook { eventbridge_source s bus=hr; }
        location /put  { eventbridge_put_events bus=hr; }
    }
EOF

# the configuration's line holding MARK
sub line_of {
    my ($n, $mark) = @_;
    open my $fh, '<', $n->dir . '/nginx.conf' or return 0;
    my $i = 0;
    while (<$fh>) { $i++; return $i if index($_, $mark) >= 0 }
    return 0;
}

# conf_check(NAME, FILE TEXT or DATA, RE, [nginx.conf text]): nginx -t fails
# naming the file, then RE, and the eventbridge_config line
sub conf_bad {
    my ($name, $file, $re, $conf) = @_;
    my $n = EBTest::Nginx->new(http => $conf // $TCONF);
    write_config($n, $file) if defined $file;
    my ($rc, $out) = $n->test_conf;
    my $path = $n->dir . '/buses.json';
    my $re2 = ref $re eq 'CODE' ? $re->($n) : $re;
    subtest "nginx -t: $name" => sub {
        isnt($rc, 0, 'fails');
        like($out, qr/\[emerg\]/, 'an [emerg] message');
        like($out, $re2, 'names the file, the place and the problem') or diag $out;
        like($out, qr/\Q$path\E/, 'names the file') or diag $out;
        like($out, qr/test failed/, 'reports the test failed');
        unlike($out, qr/s3cret|hunter2/, 'no secret from the file in the message');
    };
}

my $T1 = { type => 'http', url => 'https://t.example.com/' };
my $base = sub {
    my (%rule) = @_;
    return { targets => { t => $T1 },
             buses => { hr => { rules => { r => { pattern => { source => ['s'] },
                                                  targets => [ { target => 't' } ],
                                                  %rule } } } } };
};

conf_bad('JSON syntax error', qq({\n  "buses": {\n    "hr" {}\n  }\n}\n),
         sub { my $p = $_[0]->dir . '/buses.json';
               qr/"eventbridge_config" directive: \Q$p\E:3:10: invalid JSON: .*colon/ });
conf_bad('JSON syntax error: trailing comma',
         qq({\n  "buses": {\n    "hr": {"rules": {}},\n  }\n}\n),
         sub { my $p = $_[0]->dir . '/buses.json';
               qr/\Q$p\E:4:3: invalid JSON/ });
conf_bad('unknown top-level key', { buses => { hr => {} }, bus => {} },
         qr/buses\.json: \(top level\): unknown key "bus"/);
conf_bad('unknown key in a bus', { buses => { hr => { rulez => {} } } },
         qr/buses\.json: buses\.hr: unknown key "rulez"/);
conf_bad('unknown key in a rule (typo)', $base->(patern => {}),
         qr/buses\.json: buses\.hr\.rules\.r: unknown key "patern"/);
conf_bad('unknown key in a connection, with a secret',
         { connections => { c => { type => 'basic', username => 'u',
                                   password => 'hunter2', pasword => 'hunter2' } },
           buses => { hr => {} } },
         qr/buses\.json: connections\.c: unknown key "pasword"/);
# credentials in clear: refused unless the connection says "insecure"
my $plain = sub {
    my ($conn, %t) = @_;
    return { connections => { c => $conn },
             targets => { t => { type => 'http', url => 'https://t.example.com/',
                                 connection => 'c', %t } },
             buses => { hr => { rules => { r => { pattern => { source => ['s'] },
                                                  targets => [ { target => 't' } ] } } } } };
};
my %basic_c = (type => 'basic', username => 'u', password => 'hunter2');
my %oauth_c = (type => 'oauth2', token_url => 'https://id.example/token',
               client_id => 'i', client_secret => 's3cret');
conf_bad('basic credentials to a plain http:// url',
         $plain->({ %basic_c }, url => 'http://t.example.com/'),
         qr/buses\.json: targets\.t\.connection: target "t" would send the credentials of connection "c" \(basic\) in clear: its url is http:\/\/; use https:\/\/, or set "insecure": true in connections\.c/);
conf_bad('an api key to a plain http:// cloudevents url',
         $plain->({ type => 'api_key', header => 'X-Key', value => 's3cret' },
                  type => 'cloudevents', url => 'http://ce.example.com/'),
         qr/targets\.t\.connection: target "t" would send the credentials of connection "c" \(api_key\) in clear/);
conf_bad('an oauth2 client secret to a plain http:// token_url',
         $plain->({ %oauth_c, token_url => 'http://id.example/token' }),
         qr/targets\.t\.connection: connection "c" \(oauth2\) would send its client secret in clear: its token_url is http:\/\/; use https:\/\/, or set "insecure": true in connections\.c/);
conf_bad('"insecure" must be a boolean',
         $plain->({ %basic_c, insecure => 'yes' }, url => 'http://t.example.com/'),
         qr/connections\.c\.insecure: /);
{
    my $n = EBTest::Nginx->new(http => $TCONF);
    write_config($n, $plain->({ %oauth_c, token_url => 'http://id.example/token',
                                insecure => JSON::PP::true }, url => 'http://t.example.com/'));
    my ($rc, $out) = $n->test_conf;
    is($rc, 0, 'nginx -t: plain http:// with "insecure": true on the connection passes') or diag $out;
    write_config($n, $plain->({ %basic_c }));
    ($rc, $out) = $n->test_conf;
    is($rc, 0, 'nginx -t: a connection over https:// passes') or diag $out;
}
conf_bad('undefined target',
         { targets => { crm => $T1 },
           buses => { hr => { rules => { 'new-employee' => {
               pattern => { source => ['s'] },
               targets => [ { target => 'users-db' }, { target => 'crm' } ] } } } } },
         qr/buses\.json: buses\.hr\.rules\.new-employee\.targets\[0\]: undefined target "users-db"/);
conf_bad('rule without targets', $base->(targets => []),
         qr/buses\.json: buses\.hr\.rules\.r\.targets: must be a non-empty array/);
conf_bad('pattern: unknown operator',
         $base->(pattern => { data => { body => { syncAction => [{ prefx => 'user_' }] } } }),
         qr/buses\.json: buses\.hr\.rules\.r\.pattern: data\.body\.syncAction\[0\]: unknown operator "prefx"/);
conf_bad('pattern: regex that does not compile',
         $base->(pattern => { a => [{ regex => '^user_(add|del' }] }),
         qr/buses\.json: buses\.hr\.rules\.r\.pattern: a\[0\]\.regex: .*(regular expression|regex).*parenthes/i);
conf_bad('pattern: numeric with a bad operator',
         $base->(pattern => { n => [{ numeric => ['=>', 5] }] }),
         qr/buses\.json: buses\.hr\.rules\.r\.pattern: n\[0\]\.numeric\S*: .*"=>"/);
conf_bad('pattern: leaf that is not an array', $base->(pattern => { source => 's' }),
         qr/buses\.json: buses\.hr\.rules\.r\.pattern: source: /);
conf_bad('pattern: invalid even in a disabled rule',
         $base->(enabled => F, pattern => { a => [{ prefx => 'x' }] }),
         qr/buses\.json: buses\.hr\.rules\.r\.pattern: a\[0\]: unknown operator "prefx"/);
conf_bad('transform: TEMPLATE with an unknown variable',
         $base->(targets => [ { target => 't', transform => {
             form => 'TEMPLATE', value => { name => '$.data.body.name' },
             template => '{"user":"${nmae}"}' } } ]),
         qr/buses\.json: buses\.hr\.rules\.r\.targets\[0\]\.transform: .*unknown variable "nmae"/);
conf_bad('transform: unknown form',
         $base->(targets => [ { target => 't', transform => { form => 'XSLT' } } ]),
         qr/buses\.json: buses\.hr\.rules\.r\.targets\[0\]\.transform\.form: must be one of/);
conf_bad('mysql column with an invalid JSONPath',
         { targets => { 'users-db' => { %{ $seed_targets{'users-db'} },
                                        columns => { name => '$.data.body[name' } } },
           buses => { hr => {} } },
         qr/buses\.json: targets\.users-db\.columns\.name: invalid JSONPath "\$\.data\.body\[name"/);
conf_bad('endpoint bus not defined in the file', { buses => { payroll => {} } },
         sub { my $f = $_[0]->dir . '/nginx.conf'; my $l = line_of($_[0], 'location /hook');
               qr/bus "hr" is not defined in \S*buses\.json in \Q$f\E:$l\b/ });
conf_bad('PutEvents bus not defined in the file', { buses => { hr => {} } },
         qr/bus "pe" is not defined in \S*buses\.json/,
         $TCONF =~ s/bus=hr; \}\n    \}/bus=pe; }\n    }/r);
conf_bad('missing file', undef, qr/buses\.json: cannot open: No such file/);

{
    my $n = EBTest::Nginx->new(http => $TCONF);
    write_config($n, { connections => $cfg->{connections}, targets => \%seed_targets,
                       buses => { hr => { rules => \%seed_rule } } });
    my ($rc, $out) = $n->test_conf;
    is($rc, 0, 'nginx -t: the documented walkthrough file passes') or diag $out;

    # a relative path is taken from the configuration prefix
    (my $rel = $TCONF) =~ s{%%DIR%%/buses\.json}{buses.json};
    $n->write_conf($rel);
    ($rc, $out) = $n->test_conf;
    is($rc, 0, 'nginx -t: a relative eventbridge_config path is found in the prefix') or diag $out;

    $n->write_conf($TCONF =~ s{(eventbridge_config [^\n]*\n)}{$1    $1}r);
    ($rc, $out) = $n->test_conf;
    isnt($rc, 0, 'nginx -t: duplicate eventbridge_config fails');
    like($out, qr/"eventbridge_config" directive is duplicate/, 'nginx -t: says duplicate')
        or diag $out;
}

# =============================================================================
# Reloads
# =============================================================================

{
    my $v1 = {
        targets => { map { $_ => http_target($_) } qw(t1 t2 tl1 tl2 tl3) },
        buses => { rl => { rules => {
            A => rule({ data => { body => { v => [1] } } }, 't1'),
            L => rule({ source => ['load.src'] }, 'tl1', 'tl2'),
        } } },
    };
    my $v2 = { targets => $v1->{targets}, buses => { rl => { rules => {
        A => rule({ data => { body => { v => [2] } } }, 't1'),
        B => rule({ data => { body => { w => [{ exists => T }] } } }, 't2'),
        L => rule({ source => ['load.src'] }, 'tl1', 'tl2'),
    } } } };
    my $v3 = { targets => $v1->{targets}, buses => { rl => { rules => {
        %{ $v2->{buses}{rl}{rules} },
        L2 => rule({ source => ['load.src'],
                     data => { body => { seq => [{ numeric => ['>', 0] }] } } }, 'tl3'),
    } } } };
    my $map = { %{ rule_targets($v1, 'rl') }, %{ rule_targets($v3, 'rl') } };

    my $r3 = EBTest::Redis->start;
    my $n3 = EBTest::Nginx->new(redis => $r3, workers => 2, http => <<'EOF');
    eventbridge_redis %%REDIS%%;
    eventbridge_config %%DIR%%/buses.json;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /rl   { eventbridge_source rl.src bus=rl; }
        location /load { eventbridge_source load.src bus=rl; }
    }
EOF
    write_config($n3, $v1);
    $n3->start;

    my $last = sub { (events($r3, 'rl')->[-1] // { fields => {} })->{fields}{rules} };
    my $reload = sub {
        my ($what) = @_;
        my %old = map { $_ => 1 } $n3->worker_pids;
        $n3->reload;
        ok(wait_for(sub { my @w = $n3->worker_pids;
                          @w == 2 && !grep { $old{$_} } @w }, 10),
           "$what: new workers serve, old ones exited");
    };

    post($n3, '/rl', '{"v":1,"w":0}');
    is(names($last->()), 'A', 'reload: v1: {"v":1,"w":0} matches A');
    post($n3, '/rl', '{"v":2,"w":0}');
    is(names($last->()), '', 'reload: v1: {"v":2,"w":0} matches nothing');
    is(tlen($r3, 'rl', 't1'), 1, 'reload: v1: one t1 entry');

    write_config($n3, $v2);
    $reload->('reload to v2');
    post($n3, '/rl', '{"v":1}');
    is(names($last->()), '', 'reload: v2: {"v":1} matches nothing (A changed)');
    post($n3, '/rl', '{"v":2,"w":0}');
    is(names($last->()), 'A,B', 'reload: v2: {"v":2,"w":0} matches A and new rule B');
    is(tlen($r3, 'rl', 't1'), 2, 'reload: v2: t1 got the A entry');
    is_deeply([ map { $_->{fields}{rule} } @{ tentries($r3, 'rl', 't2') } ], [ 'B' ],
              'reload: v2: t2 got the B entry');

    # an invalid file: the reload fails, the running configuration stays
    my @w = sort $n3->worker_pids;
    write_config($n3, qq({\n  "buses": {\n    "rl": {"rules": {}}\n  \n));
    $n3->reload;
    my $path = $n3->dir . '/buses.json';
    my $emerg = qr/\[emerg\] .*"eventbridge_config" directive: \Q$path\E:\d+:\d+: invalid JSON/;
    ok(wait_for(sub { $n3->error_log =~ $emerg }, 10),
       'reload with an invalid file: [emerg] naming FILE:LINE:COLUMN in the error log')
        or diag $n3->error_log;
    sleep 0.3;
    is_deeply([ sort $n3->worker_pids ], \@w, 'reload with an invalid file: the old workers run on');
    my $r = post($n3, '/rl', '{"v":2,"w":0}');
    is($r->{status}, 200, 'reload with an invalid file: requests still succeed');
    is(names($last->()), 'A,B', 'reload with an invalid file: with the old (v2) rules');
    post($n3, '/rl', '{"v":1}');
    is(names($last->()), '', 'reload with an invalid file: v1 rules not back');
    bus_consistent($r3, 'rl', $map, 'reloads');

    # --- reload under steady load ---
    write_config($n3, $v2);
    my $dir = tempdir('eb-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @files;
    for my $i (1 .. 3) {
        my $file = "$dir/client$i";
        push @files, $file;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            $SIG{INT} = $SIG{TERM} = 'DEFAULT';
            open my $fh, '>', $file or POSIX::_exit(1);
            $fh->autoflush(1);
            my ($end, $seq) = (time + 3, 0);
            while (time < $end) {
                $seq++;
                my $r = EBTest::http(port => $n3->port, method => 'POST',
                    path => '/load', headers => [ 'Content-Type' => 'application/json' ],
                    body => qq({"client":$i,"seq":$seq}), timeout => 10);
                print {$fh} ($r->{status} == 200
                    ? '200 ' . ($r->{json}{eventId} // 'noid') : "$r->{status} -"), "\n";
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @children, $pid;
    }
    for my $c ($v3, $v2) {
        sleep 0.9;
        write_config($n3, $c);
        $n3->reload;
    }
    my $end = time + 15;
    for my $pid (@children) {
        sleep 0.05 while time < $end && waitpid($pid, POSIX::WNOHANG()) == 0;
    }
    ok(!(grep { kill 0, $_ } @children), 'load: clients finished');
    reap_children();

    my (%count, @ids);
    for my $f (@files) {
        open my $fh, '<', $f or next;
        while (my $line = <$fh>) {
            chomp $line;
            my ($st, $id) = split / /, $line;
            $count{$st}++;
            push @ids, $id if $st eq '200';
        }
    }
    diag('reload under load: ' . join ', ', map { "$_: $count{$_}" } sort keys %count);
    cmp_ok(scalar @ids, '>', 0, 'load: requests answered with 200');
    is(scalar(grep { $_ ne '200' } keys %count), 0, 'load: no client saw anything but 200');

    my %stored = map { ($_->{ev}{id} // '') => $_ }
                 grep { ($_->{ev}{source} // '') eq 'load.src' } @{ events($r3, 'rl') };
    my @missing = grep { !$stored{$_} } @ids;
    is(scalar @missing, 0, 'load: every acknowledged event id is in the events stream ('
       . scalar(@ids) . ' acknowledged)') or diag "missing: @missing[0 .. ($#missing > 9 ? 9 : $#missing)]";
    is(scalar keys %stored, scalar @ids, 'load: no event stored that was not acknowledged');
    my @norule = grep { $stored{$_} && names($stored{$_}{fields}{rules}) !~ /^L(,L2)?$/ } @ids;
    is(scalar @norule, 0, 'load: every acknowledged event matched L (and L2 under v3 only)')
        or diag join ' ', map { names($stored{$_}{fields}{rules}) } @norule[0 .. ($#norule > 4 ? 4 : $#norule)];
    my $l2 = grep { $stored{$_} && names($stored{$_}{fields}{rules}) eq 'L,L2' } @ids;
    diag("load: $l2 events matched L2");
    ok($l2 > 0 && $l2 < @ids, 'load: both the v2 and the v3 rules took effect');
    my %tl1 = map { ($_->{ev}{id} // '') . "/$_->{fields}{rule}" => 1 } @{ tentries($r3, 'rl', 'tl1') };
    my %tl2 = map { ($_->{ev}{id} // '') . "/$_->{fields}{rule}" => 1 } @{ tentries($r3, 'rl', 'tl2') };
    is(scalar(grep { !$tl1{"$_/L"} || !$tl2{"$_/L"} } @ids), 0,
       'load: every acknowledged event has its tl1 and tl2 entries');
    bus_consistent($r3, 'rl', $map, 'reload under load');
    my $hups = () = $n3->error_log =~ /\(SIGHUP\) received/g;
    is($hups, 4, 'four reloads done');

    $n3->finish(allow => $emerg);
    my @emerg = grep { /\[emerg\]/ } split /\n/, $n3->error_log;
    is(scalar @emerg, 1, 'reloads: the only [emerg] is the one of the invalid file')
        or diag join "\n", @emerg;
}

done_testing;
