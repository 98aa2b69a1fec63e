# Shared by export_official.sh and export_token_official.sh: exports the files of each
# `PINNED` entry ("<owner>+<repo> <commit> <path>..."), read from the git dir under $GIT_ROOT at
# the pinned commit, into $OUT_DIR/<owner>+<repo>/, with a COMMIT stamp. Source it, then call
# `export_pinned`.

git_dir_of() {
  local base=$GIT_ROOT/$1
  for d in "$base/repo/.git" "$base/repo" "$base/.git" "$base"; do
    if git --git-dir="$d" rev-parse --git-dir >/dev/null 2>&1; then
      echo "$d"
      return 0
    fi
  done
  echo "no git dir for $1 under $GIT_ROOT" >&2
  return 1
}

export_pinned() {
  for entry in "${PINNED[@]}"; do
    read -r name commit paths <<<"$entry"
    gd=$(git_dir_of "$name")
    if ! git --git-dir="$gd" cat-file -e "$commit^{commit}" 2>/dev/null; then
      echo "$name: pinned commit $commit not in $gd (git fetch origin $commit)" >&2
      exit 1
    fi
    dest=$OUT_DIR/$name
    rm -rf "$dest"
    mkdir -p "$dest"
    # One `git show` per file (not `git archive`, which also walks blobs we do not need and
    # that a partial mirror may lack).
    for p in $paths; do
      mkdir -p "$dest/$(dirname "$p")"
      git --git-dir="$gd" show "$commit:$p" >"$dest/$p"
    done
    echo "$commit" >"$dest/COMMIT"
    echo "exported $name @ $commit ($(wc -w <<<"$paths") files) -> $dest"
  done
}
