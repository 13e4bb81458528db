#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster plus an OpenSSH "login node" on
# 127.0.0.1, without systemd.  Debian 12 (bookworm), run as root.
# The project's copy of the shared recipe, changed for its tests:
#   * sshd listens on two ports (2222, 2223): SSHRunner's tests use them as two hosts;
#   * memory limits are enforced (OverMemoryKill, sampled every second), so a job
#     over its --mem ends OUT_OF_MEMORY as on a real cluster.
#
#   munged -> [mariadbd -> slurmdbd] -> slurmctld -> slurmd -> sshd
#
# All state, configs, keys, logs and pid files live under $LOCALSLURM_ROOT.
# Re-running this script stops the previous instance (via its pid files) and
# starts a fresh cluster (job ids restart at 1; SSH host/client keys are kept).
#
# Environment knobs (all optional):
#   LOCALSLURM_ROOT        state dir                     [/tmp/localslurm]
#   LOCALSLURM_SSH_PORT    sshd port on 127.0.0.1        [2222]
#   LOCALSLURM_ACCOUNTING  1 = slurmdbd+MariaDB (real sacct), 0 = none  [1]
#   LOCALSLURM_TIMEOUT     seconds to wait for each daemon                [60]
#   LOCALSLURM_SKIP_INSTALL 1 = never call apt-get                        [0]
set -euo pipefail

ROOT=${LOCALSLURM_ROOT:-/tmp/localslurm}
SSH_PORT=${LOCALSLURM_SSH_PORT:-2222}
SSH_PORT2=${LOCALSLURM_SSH_PORT2:-2223}
ACCOUNTING=${LOCALSLURM_ACCOUNTING:-1}
TIMEOUT=${LOCALSLURM_TIMEOUT:-60}
SKIP_INSTALL=${LOCALSLURM_SKIP_INSTALL:-0}
CLUSTER=localcluster
CTLD_PORT=6817 SLURMD_PORT=6818 DBD_PORT=6819 MYSQL_PORT=3307
SSH_USER=root

ETC=$ROOT/etc RUN=$ROOT/run LOG=$ROOT/log SPOOL=$ROOT/spool
MUNGE_SOCK=$ROOT/munge/munge.socket.2
export SLURM_CONF=$ETC/slurm.conf

T_START=$EPOCHREALTIME
elapsed() { awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}'; }
say() { echo "[localslurm $(elapsed)s] $*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

# wait_for DESCRIPTION LOGFILE CMD... : poll CMD until it succeeds or TIMEOUT.
wait_for() {
  local desc=$1 logf=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "ERROR: timed out after ${TIMEOUT}s waiting for: $desc" >&2
      [ -f "$logf" ] && { echo "---- last lines of $logf ----" >&2; tail -n 30 "$logf" >&2; }
      echo "(daemons started so far are still running; stop them with stop.sh)" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- stop old ---
# Kill only processes whose pid file is ours AND whose cmdline/environ mention
# $ROOT (guards against pid reuse).
# exited daemons linger as zombies until PID 1 reaps them: treat state Z as dead
alive() { local st; st=$(sed -E 's/^.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1; [ -n "$st" ] && [ "$st" != Z ]; }
stop_one() {
  local pidfile=$1 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] &&
     cat "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null | tr '\0' '\n' | grep -qF -- "$ROOT"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
stop_all() {
  if [ -f "$SLURM_CONF" ] && timeout 5 scontrol ping >/dev/null 2>&1; then
    ids=$(timeout 5 squeue -h -o %A 2>/dev/null || true)
    if [ -n "$ids" ]; then
      timeout 10 scancel $ids 2>/dev/null || true
      for i in $(seq 1 50); do [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
    fi
  fi
  for d in sshd slurmd slurmctld slurmdbd mariadbd munged; do stop_one "$RUN/$d.pid"; done
}

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- install ---
pkgs=()
[ -x /usr/sbin/munged ]    || pkgs+=(munge)
[ -x /usr/sbin/slurmctld ] || pkgs+=(slurmctld)
[ -x /usr/sbin/slurmd ]    || pkgs+=(slurmd)
command -v sbatch >/dev/null || pkgs+=(slurm-client)
[ -x /usr/sbin/sshd ]      || pkgs+=(openssh-server)
if [ "$ACCOUNTING" = 1 ]; then
  [ -x /usr/sbin/slurmdbd ] || pkgs+=(slurmdbd)
  command -v mariadbd >/dev/null || pkgs+=(mariadb-server)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  [ "$SKIP_INSTALL" = 1 ] && die "missing packages: ${pkgs[*]}"
  echo "[localslurm] installing: ${pkgs[*]}" >&2
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then     # keep postinst from starting services
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi
say "packages ready ($(slurmctld -V))"

# ---------------------------------------------------------------- layout ---
mkdir -p "$ROOT"
stop_all
rm -rf "$SPOOL" "$LOG" "$RUN" "$ROOT/munge/munge.socket.2"* "$ROOT/mysql"
mkdir -p "$ETC" "$RUN" "$LOG" "$SPOOL/ctld" "$SPOOL/d" "$ROOT/munge" "$ROOT/ssh" "$ROOT/work"
chmod 755 "$ROOT"; chmod 1777 "$ROOT/work"

# ---------------------------------------------------------------- munge ---
if [ ! -s "$ROOT/munge/munge.key" ]; then
  dd if=/dev/urandom of="$ROOT/munge/munge.key" bs=1024 count=1 status=none
fi
# munged requires the socket dir to be world-executable; key itself is 0600
chmod 755 "$ROOT/munge"; chmod 600 "$ROOT/munge/munge.key"
munged --socket="$MUNGE_SOCK" --key-file="$ROOT/munge/munge.key" \
       --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
       --seed-file="$ROOT/munge/munged.seed"
munge_ok() { munge -S "$MUNGE_SOCK" -n | unmunge -S "$MUNGE_SOCK"; }
wait_for "munged" "$LOG/munged.log" munge_ok
say "munged up"

# ---------------------------------------------------------------- slurm.conf ---
NODE_LINE=$(slurmd -C 2>/dev/null | head -n1 | sed -E 's/^NodeName=[^ ]+/NodeName=localhost/') || true
[[ "$NODE_LINE" == NodeName=localhost* ]] || NODE_LINE="NodeName=localhost CPUs=$(nproc)"
if [ "$ACCOUNTING" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# munge socket used for slurmdbd connections (NOT taken from AuthInfo!)
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
cat > "$ETC/slurm.conf" <<EOF
# generated by start-localhost-slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
CredType=cred/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# memory is a consumable resource, so --mem is a limit (OverMemoryKill enforces it)
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
ReturnToService=2
KillWait=5
MinJobAge=300
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
$NODE_LINE State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# ---------------------------------------------------------------- accounting ---
if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p "$ROOT/mysql/data"
  mariadb-install-db --no-defaults --datadir="$ROOT/mysql/data" --user=root \
      --auth-root-authentication-method=normal --skip-test-db > "$LOG/mariadb-install.log" 2>&1 \
      || { tail -20 "$LOG/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
  setsid mariadbd --no-defaults --datadir="$ROOT/mysql/data" --socket="$ROOT/mysql/mysqld.sock" \
      --port=$MYSQL_PORT --bind-address=127.0.0.1 --skip-name-resolve --user=root \
      --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadbd.log" \
      --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
  wait_for "mariadbd" "$LOG/mariadbd.log" mariadb-admin --no-defaults -S "$ROOT/mysql/mysqld.sock" -uroot ping
  mariadb --no-defaults -S "$ROOT/mysql/mysqld.sock" -uroot -e \
    "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  say "mariadbd up"
  cat > "$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a group/world-readable file
  slurmdbd                         # finds slurmdbd.conf next to $SLURM_CONF
  wait_for "slurmdbd" "$LOG/slurmdbd.log" sacctmgr -n -P show cluster
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null
  say "slurmdbd up"
fi

# ---------------------------------------------------------------- slurm daemons ---
slurmctld
ctld_up() { scontrol ping | grep -q UP; }
wait_for "slurmctld" "$LOG/slurmctld.log" ctld_up
say "slurmctld up"
slurmd -N localhost                # hostname is not 'localhost': force the node name
node_idle() { [ "$(sinfo -h -n localhost -o %T)" = idle ]; }
wait_for "node localhost idle" "$LOG/slurmd.log" node_idle
say "slurmd up, node idle"

# ---------------------------------------------------------------- sshd ---
S=$ROOT/ssh
[ -s "$S/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C localslurm-host -f "$S/ssh_host_ed25519_key"
[ -s "$S/id_ed25519" ]           || ssh-keygen -q -t ed25519 -N '' -C localslurm-client -f "$S/id_ed25519"
cp "$S/id_ed25519.pub" "$S/authorized_keys"; chmod 600 "$S/authorized_keys" "$S/id_ed25519"
{ echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$S/ssh_host_ed25519_key.pub")"
  echo "[127.0.0.1]:$SSH_PORT2 $(cut -d' ' -f1,2 "$S/ssh_host_ed25519_key.pub")"; } > "$S/known_hosts"
cat > "$S/sshd_config" <<EOF
Port $SSH_PORT
Port $SSH_PORT2
ListenAddress 127.0.0.1
HostKey $S/ssh_host_ed25519_key
PidFile $RUN/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# authorized_keys lives under /tmp (mode 1777): StrictModes would refuse it
StrictModes no
AuthorizedKeysFile $S/authorized_keys
Subsystem sftp internal-sftp
# every SSH session (exec and sftp) sees the cluster config
SetEnv SLURM_CONF=$SLURM_CONF
# asyncssh multiplexes many exec channels over one connection (default 10)
MaxSessions 100
MaxStartups 100:30:200
LogLevel INFO
EOF
mkdir -p /run/sshd; chmod 755 /run/sshd   # privilege-separation dir, hard-wired in Debian's sshd
/usr/sbin/sshd -t -f "$S/sshd_config" || die "sshd config test failed"
/usr/sbin/sshd -f "$S/sshd_config" -E "$LOG/sshd.log"
ssh_ok() {
  [ "$(ssh -p "$SSH_PORT" -i "$S/id_ed25519" -o BatchMode=yes -o UserKnownHostsFile="$S/known_hosts" \
        -o StrictHostKeyChecking=yes -o ConnectTimeout=5 "$SSH_USER@127.0.0.1" 'sinfo -h -n localhost -o %T')" = idle ]
}
wait_for "sshd + sinfo over ssh" "$LOG/sshd.log" ssh_ok
say "sshd up"

# ---------------------------------------------------------------- report ---
cat > "$ROOT/env.sh" <<EOF
export LOCALSLURM_SSH_HOST=127.0.0.1
export LOCALSLURM_SSH_PORT=$SSH_PORT
export LOCALSLURM_SSH_PORT2=$SSH_PORT2
export LOCALSLURM_SSH_USER=$SSH_USER
export LOCALSLURM_SSH_KEY=$S/id_ed25519
export LOCALSLURM_SSH_KNOWN_HOSTS=$S/known_hosts
export LOCALSLURM_PARTITION=debug
export LOCALSLURM_WORKDIR=$ROOT/work
export LOCALSLURM_ACCOUNTING=$ACCOUNTING
export LOCALSLURM_ROOT=$ROOT
export SLURM_CONF=$SLURM_CONF
EOF
say "ready; stop with: LOCALSLURM_ROOT=$ROOT $(dirname "$(readlink -f "$0")")/stop-slurm.sh"
cat "$ROOT/env.sh"
