# compare.awk - the report of test/runcsuite/run.sh: reads the bats TAP
# files of the reference (runc/<file>.tap) and of the runtime under test
# (runtime/<file>.tap) and prints counts per file, totals, and the tests
# whose outcome differs.
#
#   awk -f compare.awk runc/*.tap runtime/*.tap
#
# Outcomes: pass, fail, skip, timeout (bats' per-test timeout), and
# "notrun": a test that the reference reported but the runtime's file never
# reached (the file timed out or bats died).

function side(path) { return path ~ /^runc\// ? "runc" : "crier" }

FNR == 1 {
	s = side(FILENAME)
	f = FILENAME
	sub(/^.*\//, "", f)
	sub(/\.tap$/, "", f)
	files[f] = 1
}

/^(not )?ok [0-9]+ / {
	st = ($1 == "ok") ? "pass" : "fail"
	name = $0
	sub(/^(not )?ok [0-9]+ /, "", name)
	if (name ~ / # [Ss][Kk][Ii][Pp]/) st = "skip"
	if (name ~ / # timeout after /) st = "timeout"
	sub(/ # ([Ss][Kk][Ii][Pp]|timeout after ).*$/, "", name)
	k = f SUBSEP name
	if (!(k in order)) { order[k] = ++n; key[n] = k }
	res[s, k] = st
}

END {
	sides[1] = "runc"; sides[2] = "crier"
	for (i = 1; i <= n; i++) {
		split(key[i], p, SUBSEP)
		for (j = 1; j <= 2; j++) {
			st = ((sides[j], key[i]) in res) ? res[sides[j], key[i]] : "notrun"
			cnt[sides[j], p[1], st]++
			tot[sides[j], st]++
		}
	}
	nf = asorti(files, fl)
	printf "== per file (runc 1.5.3 | crier): pass fail skip [timeout notrun]\n"
	for (i = 1; i <= nf; i++) {
		f = fl[i]
		printf "%-28s runc %3d %3d %3d | crier %3d %3d %3d", f,
			cnt["runc", f, "pass"], cnt["runc", f, "fail"] + cnt["runc", f, "timeout"], cnt["runc", f, "skip"],
			cnt["crier", f, "pass"], cnt["crier", f, "fail"] + cnt["crier", f, "timeout"], cnt["crier", f, "skip"]
		if (cnt["crier", f, "timeout"] + cnt["crier", f, "notrun"] > 0)
			printf "  [crier: %d timed out, %d not run]", cnt["crier", f, "timeout"], cnt["crier", f, "notrun"]
		printf "\n"
	}
	printf "\n== totals (%d files, %d tests)\n", nf, n
	for (j = 1; j <= 2; j++) {
		s = sides[j]
		printf "%-6s pass %3d  fail %3d  skip %3d  (of the failures: %d timed out, %d not run)\n", s,
			tot[s, "pass"], tot[s, "fail"] + tot[s, "timeout"] + tot[s, "notrun"], tot[s, "skip"],
			tot[s, "timeout"], tot[s, "notrun"]
	}
	printf "\n== pass with runc, not with crier (crier's outcome)\n"
	for (i = 1; i <= n; i++) {
		k = key[i]
		if (!(("runc", k) in res) || res["runc", k] != "pass") continue
		c = (("crier", k) in res) ? res["crier", k] : "notrun"
		if (c == "pass") continue
		split(k, p, SUBSEP)
		printf "%-8s %s: %s\n", c, p[1], p[2]
		gap++
	}
	printf "(%d tests)\n", gap
	printf "\n== other differences (runc's outcome -> crier's)\n"
	for (i = 1; i <= n; i++) {
		k = key[i]
		r = (("runc", k) in res) ? res["runc", k] : "notrun"
		c = (("crier", k) in res) ? res["crier", k] : "notrun"
		if (r == c || r == "pass") continue
		split(k, p, SUBSEP)
		printf "%-7s -> %-7s %s: %s\n", r, c, p[1], p[2]
	}
	printf "\n== every test: runc crier file: test\n"
	for (i = 1; i <= n; i++) {
		k = key[i]
		split(k, p, SUBSEP)
		r = (("runc", k) in res) ? res["runc", k] : "notrun"
		c = (("crier", k) in res) ? res["crier", k] : "notrun"
		printf "%-7s %-7s %s: %s\n", r, c, p[1], p[2]
	}
}
