process MULTIQC {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(multiqc_files, stageAs: '?/*')
    path multiqc_config

    output:
    tuple val(meta), path("multiqc_report.html"), emit: report
    tuple val(meta), path("multiqc_report_data"), emit: data
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    multiqc \\
        --force \\
        --config ${multiqc_config} \\
        --filename multiqc_report.html \\
        ${args} \\
        .

    printf '"%s":\\n    multiqc: "%s"\\n' '${task.process}' "\$(multiqc --version | sed 's/.*version //')" > versions.yml
    """

    stub:
    """
    mkdir -p multiqc_report_data
    touch multiqc_report.html
    printf '"%s":\\n    multiqc: "%s"\\n' '${task.process}' 'stub' > versions.yml
    """
}
