process MULTIQC {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(multiqc_files, stageAs: '?/*')
    path multiqc_config

    output:
    tuple val(meta), path("${prefix}.html"), emit: report
    tuple val(meta), path("${prefix}_data"), emit: data
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: 'multiqc_report'
    // Its own version is written first and read by the report, beside every other step's.
    """
    printf '"%s":\\n    multiqc: "%s"\\n' '${task.process}' "\$(multiqc --version | sed 's/.*version //')" > versions.yml
    cp versions.yml multiqc_mqc_versions.yml

    multiqc \\
        --force \\
        --config ${multiqc_config} \\
        --filename ${prefix}.html \\
        ${args} \\
        .
    """

    stub:
    prefix = task.ext.prefix ?: 'multiqc_report'
    """
    mkdir -p ${prefix}_data
    touch ${prefix}.html
    printf '"%s":\\n    multiqc: "%s"\\n' '${task.process}' 'stub' > versions.yml
    """
}
