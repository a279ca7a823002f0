# Sourced by scripts that run Rampart's Windows binaries under Wine: installs
# Debian's wine64 (and Xvfb for the app) if missing, makes a Wine prefix in
# the cross cache (outside the clone) with the ProcessPrng shim Rust's std
# needs on Wine 8, and exports WINE (the loader), WINEPREFIX, WINEDEBUG.
# Needs scripts/cross-env.sh sourced first (CROSS_CACHE, apt helper).

cross_apt_install <<'EOF'
wine64 /usr/lib/wine/wine64
xvfb /usr/bin/Xvfb
xauth /usr/bin/xauth
EOF

export WINE=/usr/lib/wine/wine64
export WINEPREFIX=${RAMPART_WINEPREFIX:-$CROSS_CACHE/wineprefix}
export WINEDEBUG=${WINEDEBUG:--all}
# No Mono or Gecko download prompts: Rampart needs neither.
export WINEDLLOVERRIDES="mscoree,mshtml=;${WINEDLLOVERRIDES:-}"

wine_shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [[ ! -f $wine_shim ]]; then
    echo "wine-env: creating the Wine prefix $WINEPREFIX" >&2
    mkdir -p "$WINEPREFIX"
    # wineboot needs no display; without one it skips what it would draw.
    DISPLAY= "$WINE" wineboot --init >/dev/null 2>&1 || true
    /usr/lib/wine/wineserver -w || true
    x86_64-w64-mingw32-gcc -shared -O2 -o "$wine_shim.tmp" \
        "$(dirname "${BASH_SOURCE[0]}")/wine/bcryptprimitives.c" -ladvapi32
    mv "$wine_shim.tmp" "$wine_shim"
fi
