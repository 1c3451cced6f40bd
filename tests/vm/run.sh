#!/bin/bash
# make vm-test: the sandbox on Debian 12's own kernel, in a virtual machine.
#
# usage: tests/vm/run.sh BUILD_DIR TEST_BUILD_DIR
#
# Fetches the kernel package that `linux-image-amd64` depends on with
# `apt-get download` (unpacked here, never installed on the host), extracts
# the uncompressed vmlinux (QEMU boots it through its PVH entry, much faster
# than the bzImage under emulation), builds a busybox initramfs holding the
# 9p and virtio modules, and boots it with `qemu-system-x86_64 -accel tcg`:
# AppArmor on, no network device, the host's /usr and /etc and this checkout
# shared read-only over 9p at the same paths. The guest's init mounts cgroup2
# with the memory and pids controllers and runs tests/vm/guest.sh, whose
# exit status this script returns. The kernel and the initramfs are cached
# in BUILD_DIR/vm/ between runs; the guest's console goes to
# BUILD_DIR/vm/console.log.
#
# Environment: CODEJAIL_VM_TIMEOUT (seconds for the whole guest run, default
# 1500), CODEJAIL_VM_STEPS (the guest's steps to run, comma-separated, default
# all; see tests/vm/guest.sh), CODEJAIL_VM_CPUS (default 2), CODEJAIL_VM_MEM
# (MiB, default 3072: the memory cgroup test allocates 1 GiB),
# CODEJAIL_VM_PYTEST (extra pytest arguments for the integration step, such
# as "-k apparmor").
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR TEST_BUILD_DIR" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
test_build=$(cd "$2" && pwd)
cache="$build/vm"
timeout_s=${CODEJAIL_VM_TIMEOUT:-1500}
steps=${CODEJAIL_VM_STEPS:-all}
mkdir -p "$cache"

"$repo/scripts/install-deps.sh" "$repo/tests/vm/packages.txt"

log() { echo "vm-test: $*" >&2; }

# The kernel image package the meta package points at today, e.g.
# linux-image-6.1.0-57-amd64, and its candidate version.
kernel_package() {
    apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1
}

fetch_kernel() {
    local pkg version dir deb offset
    pkg=$(kernel_package)
    [ -n "$pkg" ] || { log "apt knows no dependency of linux-image-amd64 (apt-get update?)"; exit 1; }
    version=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
    dir="$cache/kernel/$pkg-$version"
    if [ ! -s "$dir/vmlinux" ]; then
        log "fetching $pkg $version"
        rm -rf "$dir" "$cache/kernel/download"
        mkdir -p "$cache/kernel/download"
        (cd "$cache/kernel/download" && apt-get download -qq "$pkg=$version")
        deb=$(ls "$cache"/kernel/download/*.deb)
        mkdir -p "$dir/unpacked"
        dpkg-deb -x "$deb" "$dir/unpacked"
        # vmlinuz is a boot stub followed by the xz-compressed kernel.
        local vmlinuz
        vmlinuz=$(ls "$dir"/unpacked/boot/vmlinuz-*)
        offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
        [ -n "$offset" ] || { log "no xz stream in $vmlinuz"; exit 1; }
        tail -c +$((offset + 1)) "$vmlinuz" | xz -dc --single-stream > "$dir/vmlinux.part"
        [ "$(head -c 4 "$dir/vmlinux.part" | od -An -c | tr -d ' ')" = '177ELF' ] ||
            { log "what $vmlinuz holds is not an ELF kernel"; exit 1; }
        mv "$dir/vmlinux.part" "$dir/vmlinux"
        rm -rf "$cache/kernel/download"
    fi
    echo "$dir"
}

# Modules the guest loads, in dependency order (9p over virtio-pci, overlay).
MODULES=(
    drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci
    fs/netfs/netfs fs/fscache/fscache net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p
    fs/overlayfs/overlay
)

build_initramfs() {
    local kdir=$1 out=$2 root kver m
    root="$cache/initramfs.d"
    rm -rf "$root"
    mkdir -p "$root"/{modules,proc,sys,dev,usr,etc,tmp,run,var,root,mnt}
    for d in bin lib lib64 sbin; do ln -s "usr/$d" "$root/$d"; done
    cp /usr/bin/busybox "$root/busybox"
    kver=$(ls "$kdir/unpacked/lib/modules")
    for m in "${MODULES[@]}"; do
        cp "$kdir/unpacked/lib/modules/$kver/kernel/$m.ko" "$root/modules/"
        basename "$m" >> "$root/modules/order"
    done
    cp "$repo/tests/vm/init" "$root/init"
    chmod 755 "$root/init"
    (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$out.part"
    mv "$out.part" "$out"
    rm -rf "$root"
}

kdir=$(fetch_kernel)
initramfs="$cache/initramfs-$(basename "$kdir").cpio.gz"
if [ ! -s "$initramfs" ] || [ "$repo/tests/vm/init" -nt "$initramfs" ] ||
   [ "$0" -nt "$initramfs" ]; then
    log "building $initramfs"
    build_initramfs "$kdir" "$initramfs"
fi

console="$cache/console.log"
log "booting $(basename "$kdir") (console: $console, timeout ${timeout_s} s)"
start=$SECONDS
set +e
# The guest writes its verdict as the last line on its console; the host
# shares are read-only, and the guest has no network device.
timeout --kill-after=10 "$timeout_s" nice -n 10 qemu-system-x86_64 \
    -accel tcg -M pc -cpu max -smp "${CODEJAIL_VM_CPUS:-2}" -m "${CODEJAIL_VM_MEM:-3072}" \
    -nodefaults -no-user-config -nic none -display none -no-reboot \
    -serial stdio -monitor none \
    -kernel "$kdir/vmlinux" -initrd "$initramfs" \
    -append "console=ttyS0 quiet panic=-1 apparmor=1 security=apparmor cj.repo=$repo cj.build=$build cj.test_build=$test_build cj.steps=$steps cj.pytest=$(printf %s "${CODEJAIL_VM_PYTEST:-}" | base64 -w0)" \
    -virtfs "local,path=/usr,mount_tag=usr,security_model=none,readonly=on" \
    -virtfs "local,path=/etc,mount_tag=etc,security_model=none,readonly=on" \
    -virtfs "local,path=$repo,mount_tag=repo,security_model=none,readonly=on" \
    < /dev/null > "$console" 2>&1
qemu_rc=$?
set -e
tail -n 60 "$console" | grep -v '^\s*$' >&2 || true
verdict=$(sed -n 's/^CODEJAIL_VM_EXIT=\([0-9]*\).*/\1/p' "$console" | tail -n 1)
log "guest finished in $((SECONDS - start)) s (qemu exit $qemu_rc)"
if [ -z "$verdict" ]; then
    [ $qemu_rc -eq 124 ] && log "FAIL: the guest did not finish within ${timeout_s} s"
    log "FAIL: the guest gave no verdict (see $console)"
    exit 1
fi
[ "$verdict" -eq 0 ] && log "OK" || log "FAIL: guest exit status $verdict (see $console)"
exit "$verdict"
