FROM onbuild-bad
