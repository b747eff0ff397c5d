#!/usr/bin/env nextflow
/*
 * CausalGeD: impute the genes a spatial panel did not measure, from a paired scRNA-seq reference.
 *
 * Entry point: validate the parameters and the samplesheet (nf-schema), run the CAUSALGED
 * workflow, and print a completion summary. Usage: docs/usage.md. Outputs: docs/output.md.
 */
include { validateParameters; paramsSummaryLog; paramsSummaryMap; samplesheetToList } from 'plugin/nf-schema'
include { CAUSALGED } from './workflows/causalged'

workflow {
    main:
    if (params.version) {
        println("${workflow.manifest.name} ${workflow.manifest.version}")
        System.exit(0)
    }
    if (params.validate_params) {
        validateParameters()
    }
    log.info(paramsSummaryLog(workflow))

    // Rows come back as [meta, sc, st, genes], with genes = [] when the column is empty.
    def samplesheet = params.input_basedir ? rebasedSamplesheet(params.input, params.input_basedir, params.trace_report_suffix) : params.input
    ch_samples = channel.fromList(samplesheetToList(samplesheet, "${projectDir}/assets/schema_input.json"))

    ch_multiqc_config = channel.value(file(params.multiqc_config ?: "${projectDir}/assets/multiqc_config.yml", checkIfExists: true))

    def pipeline_info = "${params.outdir}/pipeline_info"

    // Every parameter, seed included, is recorded with the results.
    channel.of(groovy.json.JsonOutput.prettyPrint(groovy.json.JsonOutput.toJson(params)))
        .collectFile(name: "params_${params.trace_report_suffix}.json", storeDir: pipeline_info)

    ch_run_mqc = channel.of(parameterSummaryMqc(paramsSummaryMap(workflow)))
        .collectFile(name: 'causalged_run_parameters_mqc.json')

    CAUSALGED(
        ch_samples,
        ch_multiqc_config,
        ch_run_mqc,
        !params.skip_evaluation,
        params.allow_failed_folds,
        !params.skip_multiqc,
        pipeline_info,
        params.run_causality,
        params.run_ablation,
    )

    onComplete:
    log.info(completionSummary(params.outdir))

    onError:
    log.error("CausalGeD stopped: ${workflow.errorMessage}. Fix the cause and rerun with -resume to reuse finished tasks.")
}

// A copy of the samplesheet whose relative file paths resolve from `basedir` instead of the launch
// directory (the test profile points it at the pipeline's folder). Plain CSV: the schema forbids
// spaces in paths, and a path with a comma could not be a samplesheet cell anyway.
def rebasedSamplesheet(input, basedir, suffix) {
    def lines = file(input, checkIfExists: true).readLines().findAll { line -> line.trim() }
    def header = lines[0].split(',', -1) as List
    def file_columns = ['sc', 'st', 'genes'].collect { name -> header.indexOf(name) }.findAll { i -> i >= 0 }
    def rows = lines.drop(1).collect { line ->
        def cells = line.split(',', -1) as List
        file_columns.each { i ->
            if (cells[i] && !cells[i].startsWith('/') && !cells[i].contains('://')) {
                cells[i] = file(basedir).resolve(cells[i]).toString()
            }
        }
        cells.join(',')
    }
    def rebased = file("${workflow.workDir}/causalged/samplesheet.${suffix}.csv")
    rebased.parent.mkdirs()
    rebased.text = ([lines[0]] + rows).join('\n') + '\n'
    return rebased
}

// MultiQC custom content (an HTML section) listing the parameters of this run, by schema group.
def parameterSummaryMqc(summary) {
    def rows = summary.collect { group, group_params ->
        def items = group_params.collect { name, value -> "<dt>${name}</dt><dd><samp>${value}</samp></dd>" }
        "<h4>${group}</h4><dl class=\"dl-horizontal\">${items.join('')}</dl>"
    }
    def content = [
        id: 'causalged_run_parameters',
        section_name: 'CausalGeD run parameters',
        description: 'Parameters of this Nextflow run (also in pipeline_info/params_*.json).',
        plot_type: 'html',
        data: rows.join('\n'),
    ]
    return groovy.json.JsonOutput.toJson(content)
}

// What the user reads last: did it work, how long it took, and where the results are.
def completionSummary(outdir) {
    def status = workflow.success ? 'completed successfully' : 'failed'
    def lines = [
        "CausalGeD ${workflow.manifest.version} ${status} in ${workflow.duration}",
        "  results:        ${outdir}/<sample>/<step>/",
        "  MultiQC report: ${outdir}/multiqc/multiqc_report.html",
        "  run records:    ${outdir}/pipeline_info/",
    ]
    if (workflow.stats.ignoredCount) {
        lines << "  warning: ${workflow.stats.ignoredCount} task(s) failed and were ignored"
    }
    return lines.join('\n')
}
