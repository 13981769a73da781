# efficiency.gp - template of efficiency-P: efficiency lengths against the baseline from
# run_metrics, a row per variant: a time panel and a memory panel of bars (the measured
# crossing) with their intervals and CAB's fitted crossing as a mark, "none" (no crossing
# in the measured range) as a hatched box, "below range" (cheaper at every measured
# length) as an arrow from the smallest length to the left edge instead of a bar; at the
# page size a third panel with the log-log slope of latency.
# Set by attnbench: {{rows_top}} (the top of the y range), {{last}} (the last block),
# {{row_names}} (y tick labels from section "row-name" with {{row_name}}, {{row}}),
# {{xaxis}} (log axis of lengths), {{start}} (where bars start), {{nones}} (from section
# "none" with {{tag}}, {{x0}}, {{x1}}, {{y0}}, {{y1}}, {{xc}}, {{row}}), {{belows}} (from
# "below" with {{tag}}, {{label_tag}}, {{x0}} the left edge, {{x1}} the smallest length,
# {{row}}, {{text}} its label), {{bars}} (from "bar-time" or "bar-memory", none for a row
# below range; "no-bars" when no row has one), {{slope_max}}, {{slopes}} (from
# "slope-point"); list elements get {{data}}, {{index}}, {{ls}}. Other sections: figure.gp.

#@ body
	set yrange [-0.6:{{rows_top}}]
	set ytics scale 0
	set grid noytics xtics
	set errorbars 1.5

#@ row-names
	set ytics ({{row_names}}) noenhanced

#@ row-name
{{row_name}} {{row}}

#@ no-row-names
	set ytics 1
	set format y ""

#@ time
{{xaxis}}
	set title "time (latency)" offset 0, -0.4
	set xlabel "length N (tokens)"
	unset object
	unset label
	unset arrow
{{nones}}
{{belows}}
	plot {{bars}}, \
	     for [k=0:{{last}}] '{{name}}.dat' index k using 2:1:3:4 with xerrorbars lc rgb colour_front lw 1.5 pt 0 ps 0 notitle, \
	     for [k=0:{{last}}] '' index k using 5:1 with points ls ls_mark notitle

#@ memory
{{xaxis}}
	set title "memory (workspace)" offset 0, -0.4
	set xlabel "length N (tokens)"
	unset object
	unset label
	unset arrow
{{nones}}
{{belows}}
	plot {{bars}}, \
	     for [k=0:{{last}}] '{{name}}.dat' index k using 7:1:8:9 with xerrorbars lc rgb colour_front lw 1.5 pt 0 ps 0 notitle, \
	     for [k=0:{{last}}] '' index k using 10:1 with points ls ls_mark notitle

#@ bar-time
{{data}} index {{index}} using ({{start}}):1:({{start}}):2:($1-0.32):($1+0.32) with boxxyerror fs solid 0.85 noborder ls {{ls}} notitle

#@ bar-memory
{{data}} index {{index}} using ({{start}}):1:({{start}}):7:($1-0.32):($1+0.32) with boxxyerror fs solid 0.85 noborder ls {{ls}} notitle

#@ no-bars
NaN notitle

#@ none
	set object {{tag}} rect from {{x0}}, {{y0}} to {{x1}}, {{y1}} fc rgb colour_reference fs transparent pattern 4 border lc rgb colour_reference
	set label {{tag}} "none" at {{xc}}, {{row}} center front boxed

#@ below
	set arrow {{tag}} from {{x1}}, {{row}} to {{x0}}, {{row}} head filled size screen 0.012, 25 ls ls_below front
	set label {{label_tag}} {{text}} at {{x1}}, {{row}} left offset character 0.8, 0 front noenhanced

#@ slope
	unset object
	unset label
	unset arrow
	unset logscale x
	set xrange [0:{{slope_max}}]
	set xtics 0, 1
	set format x "%g"
	set title "scaling of latency" offset 0, -0.4
	set xlabel "log-log slope (1 = linear)"
	set arrow 1 from 1, graph 0 to 1, graph 1 nohead ls ls_reference
	set arrow 2 from 2, graph 0 to 2, graph 1 nohead ls ls_reference
	plot {{slopes}}
	unset arrow

#@ slope-point
{{data}} index {{index}} using 12:1 with points ls {{ls}} ps 1.2 notitle

# the legend's samples of this figure
#@ key-bar
	set object {{tag}} rect from screen {{x}}, screen {{y0}} to screen {{x1}}, screen {{y1}} fc rgb colour_bar fs solid 1 noborder

#@ key-interval
	set arrow {{tag}} from screen {{x}}, screen {{y}} to screen {{x1}}, screen {{y}} heads size screen 0.006, 90 lc rgb colour_front lw 1.5

#@ key-hatch
	set object {{tag}} rect from screen {{x}}, screen {{y0}} to screen {{x1}}, screen {{y1}} fc rgb colour_reference fs transparent pattern 4 border lc rgb colour_reference

#@ key-arrow
	set arrow {{tag}} from screen {{x1}}, screen {{y}} to screen {{x}}, screen {{y}} head filled size screen 0.012, 25 ls {{ls}}
