# memory.gp - template of memory-P: peak workspace against sequence length N, log-log, a
# line per variant.
# Set by attnbench: {{xaxis}}, {{yaxis}} (log axes: range and ticks, bytes with binary
# prefixes), {{lines}} (one element per variant, from section "line" with {{data}},
# {{index}}, {{ls}}). Other sections: figure.gp.

#@ body
	set xlabel "sequence length N (tokens)"
	set ylabel "peak workspace (bytes)"
{{xaxis}}
{{yaxis}}
	plot {{lines}}

#@ line
{{data}} index {{index}} using 1:2 with linespoints ls {{ls}} notitle
