# speedup.gp - template of speedup-P: median(baseline) / median(variant) against sequence
# length N, log-log, a line per variant with the 95% bootstrap interval, and 1x.
# Set by attnbench: {{xaxis}}, {{yaxis}} (log axes), {{baseline}} (the baseline's name, a
# quoted string), {{lines}} (one element per variant, from section "line" with {{data}},
# {{index}}, {{ls}}). Other sections: figure.gp.

#@ body
	set xlabel "sequence length N (tokens)"
{{xaxis}}
{{yaxis}}
	set ylabel sprintf("speed-up over %s (×)", {{baseline}}) noenhanced
	plot 1 with lines ls ls_reference notitle, \
	     {{lines}}

#@ line
{{data}} index {{index}} using 1:2:3:4 with yerrorlines ls {{ls}} notitle
