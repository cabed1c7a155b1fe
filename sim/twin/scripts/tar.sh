#!/bin/sh
# GNU tar as RHCOS ships it: Red Hat builds tar with wildcard matching of member names on by default
# (its tar-1.29-wildcards.patch), and OpenShift's cluster-restore.sh relies on that to find a static
# pod in the backup (`tar -tvf FILE "*kube-apiserver-pod.yaml"`). Debian's tar matches member names
# literally unless given --wildcards; options given on the command line still win.
TAR_OPTIONS="--wildcards${TAR_OPTIONS:+ ${TAR_OPTIONS}}"
export TAR_OPTIONS
exec /usr/bin/tar "$@"
