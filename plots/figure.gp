# figure.gp - the sections every figure's script shares: its header and loop over the
# formats, a panel's margins, the legend band, the footer. A figure template (KIND.gp in
# this folder) may define a section of the same name to replace one of these.
#
# How templates work: a line "#@ NAME" starts section NAME, which runs to the next such
# line. attnbench writes a figure's script NAME.gp by naming sections in the order the
# figure needs them, with each {{VAR}} filled in with what it computed: numbers (margins
# and places as fractions of the figure, ranges), names as escaped gnuplot strings with
# their quotes, and gnuplot commands for axes (range and tick labels) and lists of plot
# elements (one per block of NAME.dat, built from a section of the template). Everything
# else - labels, plot styles, colours via style.gp - is the template's.
#
# Set for every section: {{name}} (the figure, e.g. latency-ns), {{what}}, {{template}},
# {{run}}, {{width}} and {{height}} (inches), {{fontsize}}.

#@ header
# {{name}}.gp - {{what}}, run {{run}} (attnbench plot, template {{template}}.gp).
# Data: {{name}}.dat, in blocks (index 0, 1, ...) described by its comments.
# Shared style: style.gp. The panels' margins and the legend's places are
# fractions of the figure, laid out for width {{width}} in with {{fontsize}} pt text.
load "style.gp"
height = {{height}}	# inches
do for [fmt in formats] {
	reset
	load "style.gp"
	eval terminal(fmt, width, height)
	set output "{{name}}." . fmt
	set multiplot

#@ panel
	set lmargin at screen {{left}}
	set rmargin at screen {{right}}
	set tmargin at screen {{top}}
	set bmargin at screen {{bottom}}

#@ legend
	# the legend, in a band of its own above the panels
	unset label
	unset arrow
	unset object
	unset border
	unset tics
	unset xlabel
	unset ylabel
	unset title
	unset grid
	unset colorbox
	unset logscale
	set lmargin at screen 0
	set rmargin at screen 1
	set tmargin at screen 1
	set bmargin at screen {{bottom}}
	set xrange [0:1]
	set yrange [0:1]

# A legend entry k: its sample (key-line and key-point for a variant's line, other
# samples in the templates that use them), then its text. Set: {{tag}}, {{point_tag}},
# {{label_tag}} (numbers of the arrow or object, the point's label, the text's label);
# {{x}}..{{x1}} the sample, {{xm}} its middle, {{xt}} the text, {{y}} the row, {{y0}}..{{y1}}
# a box around it; {{ls}} the line style; {{title}}.
#@ key-line
	set arrow {{tag}} from screen {{x}}, screen {{y}} to screen {{x1}}, screen {{y}} nohead ls {{ls}}

#@ key-point
	set label {{point_tag}} "" at screen {{xm}}, screen {{y}} point ls {{ls}}

#@ key-label
	set label {{label_tag}} {{title}} at screen {{xt}}, screen {{y}} left noenhanced

#@ legend-end
	plot 2 notitle

#@ footer
	unset multiplot
	unset output
}
