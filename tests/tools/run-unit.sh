#!/usr/bin/env bash
# Runs each unit-test binary, then prints one closing line for all of them.
set -u
pass=0; fail=0; bad=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    echo "$out" | tail -n 20 | grep -v '^$' | sed "s|^|[$(basename "$t")] |" | grep -E 'FAIL|passed' || true
    line=$(echo "$out" | grep -E '^[a-z_]*:? ?[0-9]+ passed, [0-9]+ failed' | tail -n1)
    p=$(echo "$line" | sed -nE 's/.*([0-9]+) passed.*/\1/p' | head -1)
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
    if [ $rc -ne 0 ] || [ -z "$line" ]; then bad=$((bad + 1)); echo "$out" | tail -n 40; fi
done
echo "unit: $pass passed, $fail failed"
[ $bad -eq 0 ] && [ $fail -eq 0 ]
