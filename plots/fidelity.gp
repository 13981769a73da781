# fidelity.gp - template of fidelity-P: relative Frobenius error of the output against
# exact attention vs length, log-log, a panel per input regime with a shared y axis.
# Set by attnbench: {{xaxis}} (log axis of lengths), {{y_lo}}, {{y_hi}}, {{ytic_start}},
# {{ytic_step}} (whole decades around the errors); per panel {{regime}} (a quoted
# string) and {{lines}} (one element per variant from section "line" with {{data}},
# {{index}}, {{ls}}). A panel is: "panel", "regime", "first-column" or "other-column",
# "lowest-self", "lowest-cross" (self or cross patterns) or "not-lowest", "plot".
# Other sections: figure.gp.

#@ body
{{xaxis}}
	set logscale y 10
	set yrange [{{y_lo}}:{{y_hi}}]
	set ytics {{ytic_start}}, {{ytic_step}}

#@ regime
	set title {{regime}} noenhanced offset 0, -0.4

#@ first-column
	set format y "10^{%L}"
	set ylabel "relative Frobenius error"

#@ other-column
	set format y ""
	unset ylabel

#@ lowest-self
	set xlabel "sequence length N (tokens)"

#@ lowest-cross
	set xlabel "keys M (tokens)"

#@ not-lowest
	unset xlabel

#@ plot
	plot {{lines}}

#@ line
{{data}} index {{index}} using 1:2 with linespoints ls {{ls}} notitle
