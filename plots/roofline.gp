# roofline.gp - template of roofline-P: achieved GFLOP/s against arithmetic intensity
# (FLOP per byte moved), log-log, a point per variant named beside it, under this
# machine's roofline: the memory roof (triad bandwidth x intensity) up to the ridge point,
# the compute roof (the SGEMM rate) from there on.
# Set by attnbench: {{xaxis}}, {{yaxis}} (log axes), {{peak}} (GFLOP/s), {{bandwidth}}
# (GB/s), {{ridge}} (FLOP/byte), {{roof}} (the index of the roof's block: its second row
# is the ridge point); the roof's labels {{peak_label}}, {{bandwidth_label}},
# {{ridge_label}} and where they go, in graph coordinates: {{peak_x}}, {{peak_y}} and
# {{ridge_x}}, {{ridge_y}} (the left end of the text), {{bandwidth_x}}, {{bandwidth_y}}
# (the middle of the text, which runs at {{angle}} degrees, the memory roof's slope on
# the page); {{names}} (a
# name per variant from section "name" with {{text}} and {{x}}, {{y}}: where its left
# end goes), {{leaders}} (a line from a point to its name where the name sits apart,
# from section "leader" with {{x0}}, {{y0}}, {{x1}}, {{y1}}), {{points}} (one element per
# variant from section "point" with {{data}}, {{index}}, {{ls}}). Other sections:
# figure.gp.

#@ body
{{xaxis}}
{{yaxis}}
	set xlabel "arithmetic intensity (FLOP/byte)"
	set ylabel "achieved GFLOP/s"
	# the roofs: the SGEMM rate (GFLOP/s), the triad bandwidth (GB/s), where they meet
	peak = {{peak}}
	bandwidth = {{bandwidth}}
	ridge = {{ridge}}
	set label {{peak_label}} at graph {{peak_x}}, graph {{peak_y}} left noenhanced front
	set label {{bandwidth_label}} at graph {{bandwidth_x}}, graph {{bandwidth_y}} centre rotate by {{angle}} noenhanced front
	set label {{ridge_label}} at graph {{ridge_x}}, graph {{ridge_y}} left noenhanced front
{{names}}
{{leaders}}
	plot '{{name}}.dat' index {{roof}} using 1:2 with lines ls ls_roof notitle, \
	     '' index {{roof}} every ::1::1 using 1:2 with points ls ls_mark notitle, \
	     {{points}}

#@ name
	set label {{text}} at graph {{x}}, graph {{y}} left noenhanced front

#@ leader
	set arrow from graph {{x0}}, graph {{y0}} to graph {{x1}}, graph {{y1}} nohead ls ls_leader front

#@ point
{{data}} index {{index}} using 1:2 with points ls {{ls}} ps 1.3 notitle
