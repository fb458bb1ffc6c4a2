fd_undo() {
  i=$1
  while [ "$i" -gt 0 ]; do
    "fd_u$i" || echo "FD-UNDO-FAILED $i"
    i=$((i - 1))
  done
}
fd_u1() {
  fd_rc=0
  ip link set dev eth0 up >/dev/null 2>&1 || fd_rc=1
  ip route replace 0.0.0.0/0 via 10.1.1.1 dev eth0 >/dev/null 2>&1 || fd_rc=1
  return $fd_rc
}
fd_u2() {
  fd_rc=0
  ip link set dev peth0 name eth0 >/dev/null 2>&1 || fd_rc=1
  return $fd_rc
}
fd_u3() {
  fd_rc=0
  ip link del dev eth0 >/dev/null 2>&1 || fd_rc=1
  return $fd_rc
}
fd_run() {
  fd_n=$1
  shift
  if fd_err=$("$@" 2>&1); then
    echo "FD-DONE $fd_n"
  else
    echo "FD-FAILED $fd_n $(echo "$fd_err" | tr "\n" " ")"
    fd_undo $((fd_n - 1))
    exit 3
  fi
}
fd_run 1 ip link set dev eth0 down
fd_run 2 ip link set dev eth0 name peth0
fd_run 3 ip link add name eth0 type bridge
