package EBTest::NodePeer;

# A peer written in Node.js (t/node/SCRIPT.mjs) in a process of its own,
# where a standard's own npm library or Node's own protocol stack is the
# other side: the script gets a JSON file (the test's settings plus
# "dir", a temp dir of its own), listens on 127.0.0.1, writes its port
# to DIR/port and one JSON line per request to DIR/requests.jsonl.
#
#   my $p = EBTest::NodePeer->start('receive.mjs', paths => { ... });
#   $p->port, $p->url('/path')
#   $p->requests('/path')     the logged requests (all without a path)
#   $p->jsonl('sessions')     the lines of DIR/sessions.jsonl
#   $p->log                   what node wrote to stdout and stderr
#   $p->stop                  SIGTERM, SIGKILL after 5 s (also at the
#                             test's end, through EBTest::register)

use strict;
use warnings;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use File::Temp qw(tempdir);
use FindBin;
use EBTest ();

my $NODE_DIR = "$FindBin::Bin/node";
my $n_peers = 0;

sub start {
    my ($class, $script, %conf) = @_;
    (my $tag = $script) =~ s/\W.*//;
    my $self = bless { dir => tempdir("eb-$tag-XXXXXX", TMPDIR => 1, CLEANUP => 1),
                       name => ++$n_peers, script => $script }, $class;
    my $dir = $self->{dir};
    EBTest::write_file("$dir/conf.json",
                       JSON::PP->new->utf8->encode({ %conf, dir => $dir }));
    EBTest::write_file("$dir/requests.jsonl", '');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/node.log";
        open STDERR, '>>', "$dir/node.log";
        exec 'node', "$NODE_DIR/$script", "$dir/conf.json" or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    EBTest::register($self);
    EBTest::wait_for(sub { -s "$dir/port" }, 10)
        or die "$script did not start: " . $self->log;
    $self->{port} = EBTest::slurp("$dir/port");
    return $self;
}

sub port { $_[0]{port} }
sub url { "http://127.0.0.1:$_[0]{port}$_[1]" }
sub log { eval { EBTest::slurp("$_[0]{dir}/node.log") } // '' }

# the complete lines of DIR/NAME.jsonl, decoded (a line node is still
# writing is left for the next look)
sub jsonl {
    my ($self, $name) = @_;
    open my $fh, '<:raw', "$self->{dir}/$name.jsonl" or return [];
    return [ map { eval { JSON::PP->new->utf8->decode($_) } // () } grep { /\n$/ } <$fh> ];
}

sub requests {
    my ($self, $path) = @_;
    return [ grep { !defined $path || $_->{path} eq $path } @{ $self->jsonl('requests') } ];
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    EBTest::wait_for(sub { waitpid($pid, WNOHANG) != 0 }, 5)
        or do { kill 'KILL', $pid; waitpid $pid, 0 };
}

1;
