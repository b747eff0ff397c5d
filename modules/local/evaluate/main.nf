process CAUSALGED_EVALUATE {
    tag "${meta.id}"
    label 'process_medium'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st), path(split), path(predictions)

    output:
    tuple val(meta), path("${prefix}.metrics.csv"), emit: metrics
    tuple val(meta), path("${prefix}.metrics_summary.csv"), emit: summary
    tuple val(meta), path("${prefix}.heldout_predictions.h5ad"), emit: predictions
    tuple val(meta), path("${prefix}.gene_trust.csv"), emit: trust
    path "${prefix}.*_mqc.tsv", emit: mqc
    path "figures/${prefix}.*", emit: figures, optional: true
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    causalged-evaluate \\
        --sample ${prefix} \\
        --sc ${sc} \\
        --st ${st} \\
        --split ${split} \\
        --outdir . \\
        ${args} \\
        ${predictions}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p figures
    touch ${prefix}.metrics.csv ${prefix}.metrics_summary.csv ${prefix}.heldout_predictions.h5ad ${prefix}.gene_trust.csv
    touch ${prefix}.metrics_mqc.tsv ${prefix}.trust_mqc.tsv ${prefix}.general_mqc.tsv figures/${prefix}.metrics_boxplot.png figures/${prefix}.metrics_boxplot_mqc.html
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
