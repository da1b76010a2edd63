#!/usr/bin/env bash
# Installs a piosnap Debian package on this machine with dpkg, checks what it
# installed (files, conffile, user, state directory, unit), runs
# `piosnap version` and `piosnap config check` as the piosnap user, checks
# that reinstalling keeps an edited configuration, then removes and purges
# it and checks that purge kept the repository. CI runs it (`make deb-test`)
# after `make dist`; it needs root, and refuses to touch a machine where a
# piosnap package is already installed. Usage: scripts/deb/test.sh FILE.deb
set -euo pipefail
deb=${1:?usage: test.sh dist/piosnap_VERSION_amd64.deb}
[ -f "$deb" ] || { echo "deb-test: $deb does not exist: run make dist" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "deb-test: needs root (it installs $deb with dpkg): run it with sudo" >&2; exit 1; }
if dpkg-query -W -f='${Status}' piosnap 2>/dev/null | grep -q 'install ok'; then
	echo "deb-test: a piosnap package is already installed here; not touching it (run this on a machine without one)" >&2
	exit 1
fi
if getent passwd piosnap >/dev/null || [ -e /etc/piosnap ]; then
	echo "deb-test: a piosnap user or /etc/piosnap exists here; not touching them" >&2
	exit 1
fi
# A /var/lib/piosnap without the package holds at most the state files of a
# piosnap run by hand with the default state_dir; one with a directory in it
# may hold a repository, which this test must not touch.
aside=""
if [ -e /var/lib/piosnap ]; then
	if [ -n "$(find /var/lib/piosnap -mindepth 1 -type d -print -quit)" ]; then
		echo "deb-test: /var/lib/piosnap holds directories (a repository?); not touching it" >&2
		exit 1
	fi
	aside=$(mktemp -d)
	mv /var/lib/piosnap "$aside/piosnap"
	echo "deb-test: moved /var/lib/piosnap aside to $aside; it is put back at the end"
fi
fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
# dpkg runs dpkg, waiting up to 2 minutes while another apt or dpkg (a
# test-deps install on a shared machine) holds dpkg's lock.
dpkg() {
	local i out
	for i in $(seq 60); do
		if out=$(command dpkg "$@" 2>&1); then
			printf '%s\n' "$out"
			return 0
		fi
		case $out in
		*"dpkg frontend lock"* | *"dpkg status database is locked"* | *"lock-frontend"*) sleep 2 ;;
		*) printf '%s\n' "$out" >&2; return 1 ;;
		esac
	done
	printf '%s\n' "$out" >&2
	return 1
}
cleanup() {
	dpkg --purge piosnap >/dev/null 2>&1 || true
	rm -rf /var/lib/piosnap
	userdel piosnap 2>/dev/null || true
	groupdel piosnap 2>/dev/null || true
	if [ -n "$aside" ]; then
		mv "$aside/piosnap" /var/lib/piosnap && rmdir "$aside"
	fi
}
trap cleanup EXIT

version=$(dpkg-deb -f "$deb" Version)
echo "deb-test: dpkg -i $deb"
dpkg -i "$deb"

for f in /usr/bin/piosnap /usr/lib/systemd/system/piosnap.service /etc/piosnap/piosnap.toml /usr/share/doc/piosnap/README.md; do
	[ -f "$f" ] || fail "$f was not installed"
done
dpkg-query -W -f='${Conffiles}\n' piosnap | grep -q '^ /etc/piosnap/piosnap.toml ' || fail "/etc/piosnap/piosnap.toml is not a conffile"
entry=$(getent passwd piosnap) || fail "no piosnap user"
IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
[ "$home" = /var/lib/piosnap ] && [ "$shell" = /usr/sbin/nologin ] || fail "piosnap user: home $home, shell $shell"
[ "$uid" -lt 1000 ] || fail "piosnap user is not a system user (uid $uid)"
[ "$(stat -c '%U:%G %a' /var/lib/piosnap)" = "piosnap:piosnap 700" ] || fail "/var/lib/piosnap is $(stat -c '%U:%G %a' /var/lib/piosnap)"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/piosnap.service 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
fi
grep -q '^ExecStart=/usr/bin/piosnap ' /usr/lib/systemd/system/piosnap.service || fail "the unit does not run /usr/bin/piosnap"

got=$(piosnap version)
v=${got#piosnap } && v=${v#v} && v=${v//-/.} # as scripts/deb/build.sh derives the package version
[ "$version" = "$v" ] || [ "$version" = "0.0.0~git$v" ] || fail "piosnap version says '$got', the package is $version"
echo "deb-test: $got"
runuser -u piosnap -- piosnap config check || fail "config check of the installed example failed"
runuser -u piosnap -- piosnap init >/dev/null || fail "piosnap init as the piosnap user"
[ -f /var/lib/piosnap/repo/config ] || fail "init made no repository in /var/lib/piosnap/repo"

echo "# edited by deb-test" >>/etc/piosnap/piosnap.toml
dpkg -i "$deb" >/dev/null
grep -q 'edited by deb-test' /etc/piosnap/piosnap.toml || fail "reinstalling replaced the edited configuration"

dpkg -r piosnap >/dev/null
[ ! -e /usr/bin/piosnap ] || fail "remove left /usr/bin/piosnap"
[ -f /etc/piosnap/piosnap.toml ] || fail "remove (not purge) deleted the configuration"
echo '{}' >/var/lib/piosnap/status.json
dpkg --purge piosnap
[ ! -e /etc/piosnap ] || fail "purge left /etc/piosnap"
[ ! -e /var/lib/piosnap/status.json ] || fail "purge left /var/lib/piosnap/status.json"
[ -f /var/lib/piosnap/repo/config ] || fail "purge deleted the repository"
getent passwd piosnap >/dev/null || fail "purge deleted the user that owns the kept repository"
rm -rf /var/lib/piosnap/repo
dpkg -i "$deb" >/dev/null && dpkg --purge piosnap >/dev/null
[ ! -e /var/lib/piosnap ] || fail "purge without a repository left /var/lib/piosnap"
! getent passwd piosnap >/dev/null || fail "purge without a repository left the piosnap user"
echo "deb-test: ok: $deb installs, checks, upgrades keeping the configuration, removes and purges"
