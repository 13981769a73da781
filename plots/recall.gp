# recall.gp - template of recall-P and recall-packed-P: associative recall accuracy
# against the number of key-value pairs P, a line per variant, and chance.
# Set by attnbench: {{xaxis}} (log axis), {{d}} (the head dimension), {{lines}} (one
# element per variant from section "line" with {{data}}, {{index}}, {{ls}}; then chance
# from section "chance" with {{level}} when known). Other sections: figure.gp.

#@ body
{{xaxis}}
	set xlabel "key-value pairs P (d = {{d}})"
	set ylabel "recall accuracy (fraction)"
	set yrange [-0.04:1.06]
	set ytics 0, 0.25, 1
	plot {{lines}}

#@ line
{{data}} index {{index}} using 1:2 with linespoints ls {{ls}} notitle

#@ chance
{{level}} with lines ls ls_reference notitle
