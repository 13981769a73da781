/*
 * cmd-eval.c - `attnbench eval`: one variant on the user's own Q, K, V from .npy files,
 * its output written as float32 .npy.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "environment.h"
#include "error.h"
#include "options.h"
#include "memory.h"
#include "npy.h"
#include "params.h"
#include "tensor-sets.h"
#include "threads.h"

const char usage_eval[] =
	"usage: attnbench eval VARIANT --pattern P --q Q.npy --k K.npy --v V.npy --out O.npy\n"
	"                      [--set VARIANT.PARAM=X] [--seed N] [--threads N]\n"
	"                      [--plugin PATH.so]...\n"
	"\n"
	"Runs one variant on your tensors: Q of shape [B,H,N,d], K and V of shape\n"
	"[B,Hkv,M,d] (Hkv divides H; [H,N,d] and [N,d] are read as B = 1, H = 1),\n"
	"float32 or float64, C order. Writes O, shaped like Q, as float32.\n"
	"Patterns: ns, cs (N = M), nc, cc.\n";

static int load(const char *flag, const char *path, struct npy_array *a, int64_t dims[4])
{
	char why[4400] = "", what[4200];
	int ret;

	if (!path)
		return error("eval needs --%s FILE.npy", flag);
	ret = npy_read(path, a, why, sizeof(why));
	if (ret == -EINVAL)
		return error("cannot read --%s '%s': %s", flag, path, why);
	if (ret)
		return error("cannot read --%s '%s': %s", flag, path, strerror(-ret));
	snprintf(what, sizeof(what), "--%s '%s'", flag, path);
	if (tensor_dims(a, what, dims, why, sizeof(why)))
		return error("%s", why);
	return 0;
}

static int check_shapes(const int64_t q[4], const int64_t k[4], const int64_t v[4],
			enum attn_pattern pattern)
{
	char why[256];

	if (tensor_shapes_check(q, k, v, why, sizeof(why)))
		return error("%s", why);
	if (pattern_is_self(pattern) && q[2] != k[2])
		return error("pattern '%s' needs N = M, got N = %lld, M = %lld (use nc or cc)",
			     pattern_name(pattern), (long long)q[2], (long long)k[2]);
	return 0;
}

int cmd_eval(int argc, char **argv)
{
	static const struct option options[] = {
		{ "pattern", required_argument, NULL, 'p' },
		{ "q", required_argument, NULL, 'Q' },
		{ "k", required_argument, NULL, 'K' },
		{ "v", required_argument, NULL, 'V' },
		{ "out", required_argument, NULL, 'o' },
		{ "set", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "threads", required_argument, NULL, 't' },
		{ "plugin", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	const char *paths[4] = { NULL }, *pattern_text = NULL;
	struct npy_array q = { 0 }, k = { 0 }, v = { 0 };
	struct param_overrides overrides = { 0 };
	double params[VARIANT_MAX_PARAMS];
	int64_t qd[4], kd[4], vd[4];
	const struct variant_ops *variant;
	struct attn_problem p;
	int opt, ret, pattern, threads = environment_usable_cpus();
	unsigned long long seed = 0;
	char why[512], *end;
	float *out;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			pattern_text = optarg;
			break;
		case 'Q':
			paths[0] = optarg;
			break;
		case 'K':
			paths[1] = optarg;
			break;
		case 'V':
			paths[2] = optarg;
			break;
		case 'o':
			paths[3] = optarg;
			break;
		case 's':
			if (params_parse(&overrides, optarg, why, sizeof(why)))
				return error("%s", why);
			break;
		case 'S':
			seed = strtoull(optarg, &end, 10);
			if (!*optarg || *end || *optarg == '-')
				return error("--seed '%s' is not a whole number", optarg);
			break;
		case 't':
			threads = (int)strtol(optarg, &end, 10);
			if (!*optarg || *end || threads < 1 || threads > 1024)
				return error("--threads '%s' is not a whole number in 1..1024", optarg);
			break;
		case 'P':	/* loaded before parsing; again if abbreviated */
			if (option_plugin(optarg))
				return EXIT_USAGE;
			break;
		default:
			return option_error(opt, argv, "eval");
		}
	}
	if (optind != argc - 1)
		return error("eval needs exactly one variant (see 'attnbench list variants')");
	variant = variant_find(argv[optind]);
	if (!variant)
		return error("unknown variant '%s' (see 'attnbench list variants')", argv[optind]);
	if (!pattern_text)
		return error("eval needs --pattern (ns, cs, nc or cc)");
	pattern = pattern_parse(pattern_text);
	if (pattern < 0)
		return error("unknown pattern '%s' (accepted: ns, cs, nc, cc)", pattern_text);
	if (!paths[3])
		return error("eval needs --out FILE.npy");

	ret = load("q", paths[0], &q, qd) ?: load("k", paths[1], &k, kd) ?:
	      load("v", paths[2], &v, vd) ?: check_shapes(qd, kd, vd, pattern);
	if (ret)
		goto out_release;
	params_apply(&overrides, variant, params);
	p = (struct attn_problem){
		.batch = (int)qd[0], .heads = (int)qd[1], .kv_heads = (int)kd[1],
		.n = (int)qd[2], .m = (int)kd[2], .d = (int)qd[3],
		.pattern = pattern, .seed = seed, .params = params,
	};
	ret = variant_check_problem(variant, &p);
	if (ret == -ENOTSUP) {
		ret = error("variant '%s' does not support pattern '%s' at this shape (see "
			    "'attnbench list variants')", variant->name, pattern_name(pattern));
		goto out_release;
	}
	if (ret) {
		ret = error("invalid problem shape");
		goto out_release;
	}
	out = malloc(q.count * sizeof(*out));
	if (!out) {
		ret = error("out of memory for the output (%zu floats)", q.count);
		goto out_release;
	}
	threads_set(threads);
	ret = variant->forward(&p, q.data, k.data, v.data, out);
	if (ret) {
		ret = error("variant '%s' failed: %s", variant->name, strerror(-ret));
		goto out_free;
	}
	for (size_t i = 0; i < q.count; i++)
		if (!isfinite(out[i])) {
			warning("the output holds NaN or infinite values");
			break;
		}
	ret = npy_write(paths[3], out, q.ndim, q.shape);
	if (ret)
		ret = error("cannot write '%s': %s", paths[3], ret == -EEXIST ?
			    "it is a database, which an output never replaces" : strerror(-ret));
out_free:
	free(out);
out_release:
	npy_release(&q);
	npy_release(&k);
	npy_release(&v);
	return ret;
}
