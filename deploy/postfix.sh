#!/usr/bin/env bash
# A Postfix instance of its own on 127.0.0.1 from Debian's postfix, for the DSN tests: it takes
# mail by SMTP on POSTFIX_PORT, relays everything to POSTFIX_RELAY_PORT (a scripted SMTP sink on
# loopback, tests/integration/test_postfix_dsn.py), and writes the bounces it generates (its own
# RFC 3464 DSNs) into the Maildir of the sender's domain, bounces.bounceguard.test.
#   deploy/postfix.sh start|stop|status   ports: POSTFIX_PORT (default 10025),
#                                         POSTFIX_RELAY_PORT (default POSTFIX_PORT + 1)
# Never the system instance (/etc/postfix): config, queue, data, log and the Maildir live in
# $BG_VAR/postfix-$POSTFIX_PORT/ (BG_VAR defaults to ./var). Postfix must be started by root
# (it drops to mail_owner=postfix itself): sudo when not root. The Maildir is
# $BG_VAR/postfix-$POSTFIX_PORT/mail/bounces/, owned by the caller (nobody for root).
# A 4xx is tried once and bounced (a failed DSN with a 4.x.x Status) unless
# POSTFIX_QUEUE_LIFETIME (maximal_queue_lifetime, default 0) is longer; POSTFIX_DELAY_WARNING
# (delay_warning_time, default 0: none) then makes Postfix send a "delayed" DSN that soon.
source "$(dirname "$0")/lib.sh"

PORT="${POSTFIX_PORT:-10025}"
RELAY="${POSTFIX_RELAY_PORT:-$((PORT + 1))}"
DIR="$BG_VAR/postfix-$PORT"
ETC="$DIR/etc"
LOG="$DIR/postfix.log"
PATH="$PATH:/usr/sbin"  # Debian puts postfix there, outside a user's PATH
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
# The virtual delivery agent refuses uids under 100: root's bounces are delivered as nobody.
MAIL_UID=$(id -u) MAIL_GID=$(id -g)
[ "$MAIL_UID" != 0 ] || { MAIL_UID=$(id -u nobody); MAIL_GID=$(id -g nobody); }

configure() {
    mkdir -p "$ETC" "$DIR/queue" "$DIR/data" "$DIR/mail"
    # Mail arrives once and is never retried: bounce_queue_lifetime/maximal_queue_lifetime 0
    # turn a 4xx into a bounce at its first try (a DSN with Status 4.x.x, "expired").
    cat >"$ETC/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $DIR/queue
data_directory = $DIR/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $LOG
maillog_file_prefixes = $DIR
myhostname = mta.bounceguard.test
mydomain = bounceguard.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$RELAY
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = no
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = bounces.bounceguard.test
virtual_mailbox_base = $DIR/mail
virtual_mailbox_maps = static:bounces/
virtual_uid_maps = static:$MAIL_UID
virtual_gid_maps = static:$MAIL_GID
soft_bounce = no
bounce_queue_lifetime = 0
maximal_queue_lifetime = ${POSTFIX_QUEUE_LIFETIME:-0}
delay_warning_time = ${POSTFIX_DELAY_WARNING:-0}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
EOF
    # No chroot (column 5 "n"): the daemons need nothing copied into the queue directory.
    cat >"$ETC/master.cf" <<EOF
127.0.0.1:$PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
    $SUDO chown postfix:postfix "$DIR/data"
    $SUDO chown "$MAIL_UID:$MAIL_GID" "$DIR/mail"
}

pf() { $SUDO postfix -c "$ETC" "$@"; }
running() { pf status >/dev/null 2>&1; }
ready() { running && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

start() {
    need_apt postfix postfix
    if [ -f "$ETC/main.cf" ] && running; then
        echo "postfix: already running on 127.0.0.1:$PORT"
        return 0
    fi
    configure
    touch "$LOG"
    pf check  # creates the queue directories with their owners
    pf start >>"$LOG" 2>&1
    wait_until 20 "$LOG" ready
    echo "postfix: ready on 127.0.0.1:$PORT, relaying to 127.0.0.1:$RELAY (log $LOG)"
}

stop() {
    if [ -f "$ETC/main.cf" ] && running; then
        pf stop >>"$LOG" 2>&1
        wait_until 20 "$LOG" bash -c "! $SUDO postfix -c '$ETC' status"
        echo "postfix: stopped"
    else
        echo "postfix: not running"
    fi
}

status() {
    if [ -f "$ETC/main.cf" ] && ready; then echo "postfix: running on 127.0.0.1:$PORT"; else
        echo "postfix: not running"; return 1; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
