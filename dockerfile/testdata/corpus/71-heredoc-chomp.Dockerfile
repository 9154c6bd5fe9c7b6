# <<-EOF strips the leading tabs of the script, so a heredoc inside it
# ends at its tab-indented terminator.
FROM busybox
RUN <<-EOF
	cat > /chomped <<INNER
	inner text
	INNER
	echo done >> /chomped
	EOF
COPY <<-EOF /chomped-copy
	line one
		line two
	EOF
