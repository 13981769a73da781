# passkey.gp - template of passkey-P: passkey retrieval accuracy as heatmaps, a panel per
# variant, needle depth across and length up, one colour scale (style.gp's palette).
# Set by attnbench: {{depth_top}}, {{length_top}} (the ranges: a cell per depth and
# length), {{cb_x}}, {{cb_y}}, {{cb_w}}, {{cb_h}} (the colour box), {{ylabel_x}},
# {{ylabel_y}}, {{xlabel_x}}, {{xlabel_y}} (the axis labels shared by all panels), the
# tick labels {{depth_tics}} and {{length_tics}}; per panel {{variant}} (a quoted string)
# and {{index}}. Then "self" or "cross" (the length axis's label); a panel is: "panel",
# "variant", "first-column" or "other-column", "second" (the second panel only: the
# shared labels are drawn once), "plot". Other sections: figure.gp.

#@ body
	set cbrange [0:1]
	set xrange [-0.5:{{depth_top}}]
	set yrange [-0.5:{{length_top}}]
	set grid noxtics noytics
	set border 15 lw 0.5
	set tics scale 0 front
	set cbtics 0, 0.25, 1 scale 0.5
	set format cb "%g"
	set cblabel "accuracy (fraction)" offset 0.5, 0
	set colorbox user origin screen {{cb_x}}, screen {{cb_y}} size screen {{cb_w}}, screen {{cb_h}}
	set label 2 "needle depth (0 = first token, 1 = last)" at screen {{xlabel_x}}, screen {{xlabel_y}} center
	set xtics ({{depth_tics}})

#@ self
	set label 1 "length N (tokens)" at screen {{ylabel_x}}, screen {{ylabel_y}} rotate by 90 center

#@ cross
	set label 1 "keys M (tokens)" at screen {{ylabel_x}}, screen {{ylabel_y}} rotate by 90 center

#@ variant
	set title {{variant}} noenhanced offset 0, -0.4

#@ first-column
	set ytics ({{length_tics}})

#@ other-column
	unset ytics

#@ second
	unset colorbox
	unset label 1
	unset label 2

#@ plot
	plot '{{name}}.dat' index {{index}} using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder lc palette notitle
