# pareto.gp - template of pareto-P: accuracy against median latency at one length, a
# point per variant, the Pareto-optimal points joined by a step line.
# Set by attnbench: {{xaxis}} (log axis), {{length}} (the length N of the latencies),
# {{passkey_m}} (the passkey length M, when the accuracy is passkey's: section "passkey",
# else "recall"), {{front}} (the index of the front's block), {{points}} (one element per
# variant, from section "point" with {{data}}, {{index}}, {{ls}}). Other sections:
# figure.gp.

#@ body
{{xaxis}}
	set xlabel "median latency at N = {{length}} (ms)"

#@ recall
	set ylabel "mean recall accuracy (fraction)"

#@ passkey
	set ylabel "passkey accuracy at M = {{passkey_m}} (fraction)"

#@ plot
	set yrange [-0.04:1.06]
	set ytics 0, 0.25, 1
	plot '{{name}}.dat' index {{front}} using 1:2 with steps ls ls_front notitle, \
	     {{points}}

#@ point
{{data}} index {{index}} using 1:2 with points ls {{ls}} ps 1.3 notitle
