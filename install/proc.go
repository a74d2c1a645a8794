package install

// procShell has the shell functions that tell a recorded process from
// whatever process has its pid now: pids are recycled, so a pid file left by
// a crash may name an unrelated process, which must never be killed. A pid
// file holds "PID STARTTIME", the start time being field 22 of
// /proc/PID/stat (clock ticks since boot), which a recycled pid does not
// share; files written by older versions hold only the pid and are checked
// by the command line alone. No single quote: runners embed it in sh -c '…'.
const procShell = `alive() { # PID STARTTIME: the process runs and started then
  _s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  _t=$2; _s=${_s##*) }
  set -- $_s
  [ "$1" != Z ] && [ "${20}" = "$_t" ]
}
pidrecord() { # PID: prints the line of a pid file for the process (ours: no newline in its name, so read takes the whole stat line)
  _p=$1; _s=; { read -r _s < "/proc/$1/stat"; } 2>/dev/null || [ -n "$_s" ] || { echo "$_p"; return 0; }
  _s=${_s##*) }
  set -- $_s
  echo "$_p ${20}"
}
ours() { # PIDFILE PATTERN: the process named runs, is the one recorded, and its command line has PATTERN
  _p=; _t=
  [ -f "$1" ] && { read -r _p _t < "$1" || [ -n "$_p" ]; } || return 1
  case $_p in "" | *[!0-9]*) return 1 ;; esac
  if [ -n "$_t" ]; then alive "$_p" "$_t" || return 1; fi
  tr "\000" " " < "/proc/$_p/cmdline" 2>/dev/null | grep -qF -- "$2"
}
`

// sha256Shell defines sha256ok HEX FILE: FILE's SHA-256 is HEX. It asks
// openssl when the host has it (with SHA instructions, 4x faster than
// coreutils' sha256sum: 8 ms against 30 ms of CPU for the 7.7 MB agent, which
// every host of a large site checks), sha256sum otherwise. No single quote:
// it goes inside fetchScript's bash -c '...'.
const sha256Shell = `sha256ok() {
  _h=$(openssl dgst -sha256 -r "$2" 2>/dev/null) && [ "${_h%% *}" != "$_h" ] || _h=$(sha256sum "$2") || return 1
  [ "${_h%% *}" = "$1" ]
}
`
