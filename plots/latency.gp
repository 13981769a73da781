# latency.gp - template of latency-P: median forward latency against sequence length N,
# log-log, a line per variant with the 95% interval of the median as error bars ([min,
# max] and less than 95% for cells of under 6 samples: the .dat says so at its end).
# A ring (style ls_unstable) marks a length where a cell was unstable: its measurement
# rounds disagreed (column 5 of the data; the .dat names them at its end).
# Set by attnbench: {{xaxis}}, {{yaxis}} (log axes: range and ticks), {{lines}} (the
# plot elements, two per variant, from section "line" with {{data}}, {{index}}, {{ls}}).
# Other sections: figure.gp.

#@ body
	set xlabel "sequence length N (tokens)"
	set ylabel "median latency (ms)"
{{xaxis}}
{{yaxis}}
	plot {{lines}}

#@ line
{{data}} index {{index}} using 1:2:3:4 with yerrorlines ls {{ls}} notitle, {{data}} index {{index}} using 1:($5 > 0 ? $2 : NaN) with points ls ls_unstable notitle
