# recall-state.gp - template of recall-state-P and recall-state-packed-P: mean recall
# accuracy against analytic state size, a point per head dimension d joined per variant,
# and chance.
# Set by attnbench: {{xaxis}} (log axis in bytes), {{pairs}} (the pair counts averaged
# over, "8..64"), {{lines}} (one element per variant from section "line" with {{data}},
# {{index}}, {{ls}}; then chance from section "chance" with {{level}} when known). Other
# sections: figure.gp.

#@ body
{{xaxis}}
	set title "a point per head dimension d, mean over P = {{pairs}}" offset 0, -0.4
	set xlabel "analytic state size (bytes)"
	set ylabel "mean recall accuracy (fraction)"
	set yrange [-0.04:1.06]
	set ytics 0, 0.25, 1
	plot {{lines}}

#@ line
{{data}} index {{index}} using 1:2 with linespoints ls {{ls}} notitle

#@ chance
{{level}} with lines ls ls_reference notitle
